"""The package's stages, in the order data flows through a run. A module may import modules of its own
stage or of earlier ones, never of a later one, and no two modules import each other in a circle;
tests/probe/test_structure.py checks both on every module's source."""

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("__init__", "stages", "errors", "stats", "clock", "textfmt")),
    ("configuration", ("checks", "inputs", "thresholds", "prompts", "config", "schema")),
    ("load shape", ("loads",)),
    ("requests and watchers", ("records", "sse", "ndjson", "apis", "client", "modelcheck", "gpu", "server_metrics",
                               "health")),
    ("aggregates", ("metrics",)),
    ("judge", ("gate",)),
    ("report", ("report",)),
    ("renderers", ("svg", "render", "render_text", "compare")),
    ("run", ("fdlimit", "progress", "outputs", "workers", "runner", "cli", "__main__", "exporter")),
)
