"""Data: the input contract (DESIGN.md section 3), synthetic data, and the dataset builder.

Modules:
    contract   file names, column specs, the Scenario type, scenarios.yaml reading
    sources    sources.yaml: the SourceSpec type (what each source's ``value`` means)
    validate   checks that raise ContractError or mark rows for quarantine
    loader     ``load_dataset(dir) -> Dataset`` (validated, cleaned, quarantined rows kept aside)
    synth      ``qanchor data synth``: synthetic UserU-style data in the contract
    build      ``qanchor data build``: split, history/future cut, snapshots, UserU pairs, manifest
    pairs      UserU pair templates; ``wording`` words event values by their declared kind
"""
