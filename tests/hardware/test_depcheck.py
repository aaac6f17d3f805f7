from hwval.depcheck import problems


def _dist(site, name, requires):
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_unmet_and_deliberately_missing_requirements_are_told_apart(tmp_path):
    _dist(tmp_path, "carried", [
        "packaging>=1",  # met by the running environment
        "hwval-no-such-package>=1",  # unmet
        "packaging<1",  # present but the wrong version
        "flashinfer-python==0.6.14",  # left out on purpose
        "hwval-extra-only; extra == 'video'",  # an extra: not needed
    ])
    found = {(p.requirement, p.expected_gap) for p in problems(tmp_path)}
    assert found == {("hwval-no-such-package>=1", False), ("packaging<1", False),
                     ("flashinfer-python==0.6.14", True)}
