"""``deploy-studio search``: the fastest variant of a model that keeps a fidelity target.

``spec`` reads the search spec (TOML), ``space`` turns the plugins' searchable settings into Optuna parameters,
``trial`` builds, judges and times one variant (a plain function: it runs in a Ray worker), ``slot`` keeps
latency measurements off cores that other trials are using, ``cluster`` starts or joins Ray, and ``driver``
runs the Optuna study (SQLite beside the results, so a killed search resumes).
"""
