"""A recovery's budget in epochs: turned into steps once the trainer knows how many items it trains on."""

from studio.recovery.settings import RecoverySettings, recovery_wanted
from studio.train import TrainPlan, sized_for


def test_an_epoch_budget_becomes_the_steps_that_pass_over_the_training_items():
    plan = TrainPlan(steps=300, epochs=2.0, batch=8)
    assert sized_for(plan, 100).steps == 25  # 2 × 100 frames ÷ 8 a batch
    assert sized_for(plan, 101).steps == 26  # a partial batch still counts as a step
    assert sized_for(TrainPlan(epochs=0.01, batch=8), 10).steps == 1  # never less than one step
    assert sized_for(plan, 100).epochs == 2.0 and sized_for(plan, 100).batch == 8


def test_without_an_epoch_budget_the_steps_decide():
    plan = TrainPlan(steps=300, batch=8)
    assert sized_for(plan, 10_000) is plan


def test_either_budget_asks_for_recovery():
    assert not recovery_wanted(RecoverySettings())
    assert recovery_wanted(RecoverySettings(recovery_steps=10))
    assert recovery_wanted(RecoverySettings(recovery_epochs=0.5))
