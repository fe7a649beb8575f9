"""The chart's notifier Deployments, GeoIP mount, findings encoding, MSK IAM, Grafana dashboard
and PrometheusRule: rendered, wired to what the program reads, queries parsed as PromQL."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from helmchart import ALL_ENABLED, CHART, RenderError, by_kind, one, program_module, render

NOTIFIERS = ("securityhub", "eventbridge", "ocsf", "webhook", "respond")


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c):
    return {e["name"]: e for e in c["env"]}


def test_every_notifier_is_a_one_pod_deployment_in_its_own_group(all_docs):
    for name in NOTIFIERS:
        deployment = one(all_docs, "Deployment", f"-notify-{name}")
        assert deployment["spec"]["replicas"] == 1
        args = container(deployment)["args"]
        command = ["respond", "--from-topic"] if name == "respond" else ["notify", name]
        assert args[:4] == [*command, "--group", f"exfilguard-notify-{name}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == f"notify-{name}"


def test_notifiers_are_off_by_default(default_docs):
    assert not [d for d in by_kind(default_docs, "Deployment") if "-notify-" in
                d["metadata"]["name"]]


def test_the_webhook_reads_its_url_from_the_secret_as_a_file(all_docs):
    deployment = one(all_docs, "Deployment", "-notify-webhook")
    c = container(deployment)
    args = c["args"]
    assert args[args.index("--url-file") + 1] == "/etc/exfilguard/webhook/url"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "webhook-url")
    assert mount["mountPath"] == "/etc/exfilguard/webhook" and mount["readOnly"]
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "webhook-url")
    assert volume["secret"]["secretName"] == "exfilguard-webhook"
    # The URL is a secret: no env var, no arg and no ConfigMap holds it.
    assert "WEBHOOK" not in json.dumps(c["env"]).upper()


def test_the_rendered_webhook_args_parse_with_the_program(all_docs):
    parser = program_module("streams.cli.main").build_parser()
    args = parser.parse_args(container(one(all_docs, "Deployment", "-notify-webhook"))["args"])
    assert (args.format, args.max_per_minute) == ("slack", 20.0)
    assert args.state == "/var/lib/exfilguard/webhook-sent.json"


def test_every_notifiers_rendered_args_parse_with_the_program(all_docs):
    parser = program_module("streams.cli.main").build_parser()
    parsed = {name: parser.parse_args(container(one(all_docs, "Deployment",
                                                    f"-notify-{name}"))["args"])
              for name in NOTIFIERS}
    assert all(callable(args.run) for args in parsed.values())
    assert (parsed["eventbridge"].bus, parsed["eventbridge"].source) == \
        ("security-findings", "exfilguard")
    assert parsed["eventbridge"].state == "/var/lib/exfilguard/eventbridge-put.json"
    assert parsed["ocsf"].output_topic == "findings-ocsf"
    respond = parsed["respond"]
    assert respond.from_topic and respond.apply and respond.allow_role == ["web-*", "batch-role"]
    assert respond.output_topic == "findings-responses"


def test_respond_apply_needs_an_allow_list():
    with pytest.raises(RenderError, match="allowRoles"):
        render(set_values={"notifiers.respond.enabled": "true",
                           "notifiers.respond.apply": "true"})


def test_a_dry_run_responder_renders_without_apply():
    docs = render(set_values={"notifiers.respond.enabled": "true"})
    args = container(one(docs, "Deployment", "-notify-respond"))["args"]
    assert "--apply" not in args and args[:2] == ["respond", "--from-topic"]


def test_webhook_needs_its_secret():
    with pytest.raises(RenderError, match="existingSecret"):
        render(set_values={"notifiers.webhook.enabled": "true"})


def test_notifiers_have_a_network_policy_without_ingress(all_docs):
    policy = one(all_docs, "NetworkPolicy", "-clients")
    components = policy["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert {f"notify-{n}" for n in NOTIFIERS} <= set(components)
    assert policy["spec"]["ingress"] == []


def test_geoip_volume_is_mounted_and_named_in_the_config(all_docs):
    config = yaml.safe_load(one(all_docs, "ConfigMap", "-config")["data"]["config.yaml"])
    assert config["geoip"] == {"country_db": "/etc/exfilguard/geoip/GeoLite2-Country.mmdb",
                               "asn_db": "/etc/exfilguard/geoip/GeoLite2-ASN.mmdb"}
    worker = one(all_docs, "StatefulSet")
    mount = next(m for m in container(worker)["volumeMounts"] if m["name"] == "geoip")
    assert mount == {"name": "geoip", "mountPath": "/etc/exfilguard/geoip", "readOnly": True}
    volume = next(v for v in worker["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "geoip")
    assert volume["secret"]["secretName"] == "exfilguard-geoip"
    # The program's own parser takes the mapping.
    parsed = program_module("streams.core.settings").parse_config(config)
    assert parsed.geoip_country_db.endswith("GeoLite2-Country.mmdb")


def test_geoip_false_wins_over_a_mounted_volume():
    docs = render(ALL_ENABLED, set_values={"config.geoip": "false"})
    config = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    assert config["geoip"] is False


def test_confluent_encoding_reaches_every_container_with_registry_credentials(all_docs):
    for workload in by_kind(all_docs, "StatefulSet") + by_kind(all_docs, "Deployment"):
        env = env_of(container(workload))
        assert env["EXFILGUARD_FINDINGS_ENCODING"]["value"] == "confluent"
        assert env["EXFILGUARD_SCHEMA_REGISTRY_URL"]["value"].startswith("https://")
        ref = env["EXFILGUARD_SCHEMA_REGISTRY_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "exfilguard-schema-registry", "key": "password"}


def test_confluent_encoding_needs_a_registry():
    with pytest.raises(RenderError, match="schemaRegistry"):
        render(set_values={"kafka.findingsEncoding": "confluent"})


def test_msk_iam_needs_no_secret_and_sets_the_region():
    docs = render(set_values={"kafka.securityProtocol": "SASL_SSL",
                              "kafka.sasl.mechanism": "OAUTHBEARER",
                              "kafka.awsRegion": "eu-west-1"})
    env = {n: e.get("value") for n, e in env_of(container(one(docs, "StatefulSet"))).items()}
    assert env["EXFILGUARD_SASL_MECHANISM"] == "OAUTHBEARER"
    assert env["EXFILGUARD_AWS_REGION"] == "eu-west-1"
    assert "EXFILGUARD_SASL_PASSWORD" not in env
    settings = program_module("streams.kafka.settings").load_kafka_settings(
        None, {k: v for k, v in env.items() if v is not None})
    assert (settings.sasl_mechanism, settings.aws_region) == ("OAUTHBEARER", "eu-west-1")
    with pytest.raises(RenderError, match="awsRegion"):
        render(set_values={"kafka.securityProtocol": "SASL_SSL",
                           "kafka.sasl.mechanism": "OAUTHBEARER"})


# --- dashboard and alerts -----------------------------------------------------------------------

promql = pytest.importorskip("promql_parser", reason="pip install promql-parser (test extra)")


def exported_metric_names() -> set[str]:
    """The names the worker's /metrics serves today, from the program itself."""
    metrics = program_module("streams.app.metrics")
    detector = program_module("streams.core.detector")
    names = set(metrics.HELP) | {"exfilguard_findings_unsent"}
    names |= {f"exfilguard_detector_{f}" for f in vars(detector.Counters())}
    return names


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(exfilguard_[a-z_]+)\b", expression))


def test_dashboard_is_a_sidecar_configmap_with_the_panels_asked_for(all_docs):
    cm = one(all_docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    dashboard = json.loads(cm["data"]["exfilguard.json"])
    titles = [p["title"] for p in dashboard["panels"]]
    assert titles == ["Records read per second", "Relevant records per second", "Findings",
                      "Dead-lettered records per second", "Consumer lag (input topic)"]
    constants = {v["name"]: v["query"] for v in dashboard["templating"]["list"]}
    assert constants["group"] == "exfilguard" and constants["lag_metric"] == \
        "kafka_consumergroup_lag"
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expression = target["expr"]
            for name, value in {"${lag_metric}": constants["lag_metric"],
                                "${lag_group_label}": constants["lag_group_label"],
                                "${lag_topic_label}": constants["lag_topic_label"],
                                "$__rate_interval": "5m", "$namespace": "security",
                                "$job": "exfilguard-metrics", "$group": "exfilguard"}.items():
                expression = expression.replace(name, value)
            promql.parse(expression)  # raises on a query Prometheus would refuse
            assert metric_names(expression) <= exported_metric_names(), panel["title"]


def test_prometheus_rule_has_the_four_alerts_and_they_parse(all_docs):
    rule = one(all_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {"ExfilguardWorkerNotReady", "ExfilguardDeadLetters",
                          "ExfilguardConsumerLagGrowing", "ExfilguardWorkerStalled"}
    for alert in rules.values():
        promql.parse(alert["expr"])
        assert re.fullmatch(r"[0-9]+m", alert["for"])
        assert metric_names(alert["expr"]) <= exported_metric_names()
    assert "> 0.5" in rules["ExfilguardDeadLetters"]["expr"]  # the values' threshold
    stalled = rules["ExfilguardWorkerStalled"]["expr"]
    # Ready, reading nothing, and lag: all three must hold.
    assert "kube_pod_status_ready" in stalled and "increase(exfilguard_records_total" in stalled
    assert 'kafka_consumergroup_lag{consumergroup="exfilguard", topic="cloudtrail"}' in stalled
    assert rules["ExfilguardWorkerStalled"]["labels"]["severity"] == "critical"


def test_alert_queries_follow_the_release(all_docs):
    docs = render(ALL_ENABLED, namespace="sec-prod",
                  set_values={"kafka.appId": "eg", "kafka.topics.input": "ct"})
    expressions = " ".join(r["expr"] for r in one(docs, "PrometheusRule")["spec"]["groups"][0]
                           ["rules"])
    assert 'namespace="sec-prod"' in expressions
    assert 'consumergroup="eg", topic="ct"' in expressions


def test_schema_rejects_a_bad_lag_metric_name():
    with pytest.raises(RenderError, match="lag"):
        render(ALL_ENABLED, set_values={"prometheusRule.lag.metric": "kafka lag"})


def rendered_notes(tmp_path, *value_files) -> str:
    """NOTES.txt as helm renders it after an install (helm template skips it): the chart copied,
    the notes defined as a named template and rendered into a ConfigMap."""
    import shutil

    from helmchart import HELM, KUBE_VERSION

    if not HELM.is_file():
        pytest.skip(f"helm is not built at {HELM}: run tools/helm-check.sh (make helm-check)")
    chart = tmp_path / "exfilguard"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_test.tpl").write_text(
        '{{- define "notes-test" -}}' + notes + "{{- end -}}")
    (chart / "templates" / "notes-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ include "notes-test" . | indent 4 }}\n')
    cmd = [str(HELM), "template", "exfilguard", str(chart), "--namespace", "security",
           "--kube-version", KUBE_VERSION, "--show-only", "templates/notes-test.yaml"]
    for f in value_files:
        cmd += ["-f", str(f)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)["data"]["notes"]


# The topics a running worker created (measured: `exfilguard worker` on the local broker, the
# topics listed after it judged the public capture); NOTES must name each for the ACLs.
WORKER_TOPICS = [
    "cloudtrail", "findings", "findings-responses", "cloudtrail-dlq", "exfilguard-instance-events",
    "exfilguard-__assignor-__leader",
] + [f"exfilguard-{t}-changelog" for t in (
    "instance_credentials", "instance_to_addresses", "address_to_account", "pending_calls",
    "finding_aggregates", "offending_event_ids", "partition_clock", "key_lineage",
    "lineage_parked")]


def test_notes_list_every_topic_and_group_for_acls(tmp_path):
    notes = rendered_notes(tmp_path, ALL_ENABLED)
    for topic in WORKER_TOPICS:
        name = topic.removesuffix("-changelog").removeprefix("exfilguard-")
        assert topic in notes or (topic.endswith("-changelog") and name in notes
                                  and "exfilguard-<table>-changelog" in notes), topic
    assert "group exfilguard" in notes and "exfilguard-notify-<name>" in notes
    assert "Notifier: Deployment exfilguard-notify-webhook" in notes
    assert "Notifier: Deployment exfilguard-notify-respond" in notes
    assert "findings-ocsf" in notes and "Write and Create on findings-responses" in notes
    assert "IdempotentWrite" in notes


def test_the_changelog_topics_named_are_the_workers_tables():
    tables = program_module("streams.app.wiring").TABLES
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    for table in tables:
        assert table in notes, table
