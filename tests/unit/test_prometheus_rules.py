"""deploy/prometheus: the config and rules pass promtool, and the rules' unit tests
(promtool test rules) pass: alerts fire when they should and stay quiet otherwise."""

from __future__ import annotations

import shutil
import subprocess

from genserve.config import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: make test installs Debian's prometheus"
    out = subprocess.run([binary, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(PROMETHEUS / "tests" / "rules_test.yml"))


def test_rules_are_valid_and_lint_clean() -> None:
    out = promtool("check", "rules", *map(str, sorted((PROMETHEUS / "rules").glob("*.yml"))))
    assert "SUCCESS" in out


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    alerts = {
        rule["alert"]
        for path in (PROMETHEUS / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tests = yaml.safe_load((PROMETHEUS / "tests" / "rules_test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts and alerts <= tested, alerts - tested


def test_compose_config_is_valid(tmp_path) -> None:
    """The scrape config as docker-compose mounts it, with its secret and rules in place."""
    (tmp_path / "rules").mkdir()
    for rule in (PROMETHEUS / "rules").glob("*.yml"):
        shutil.copy(rule, tmp_path / "rules")
    (tmp_path / "metrics_key").write_text("gs_example")
    text = (PROMETHEUS / "prometheus.yml").read_text()
    text = text.replace("/run/secrets/metrics_key", str(tmp_path / "metrics_key"))
    text = text.replace("/etc/prometheus/rules/", str(tmp_path / "rules") + "/")
    (tmp_path / "prometheus.yml").write_text(text)
    assert "SUCCESS" in promtool("check", "config", str(tmp_path / "prometheus.yml"))
