"""Chart tests over the rendered manifests of helm/exfilguard.

tools/helm-check.sh validates the same renders against the Kubernetes schemas; these tests check
what the schemas cannot: the values that matter, that the pieces agree with each other and with
the image, and that secrets are referenced, never inlined.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import yaml
from helmchart import CHART, ROOT, RenderError, by_kind, one, program_module, render

DATA_DIR = "/var/lib/exfilguard"
CONFIG_PATH = "/etc/exfilguard/config.yaml"
WORKLOAD_KINDS = ("StatefulSet", "Deployment", "Job")
SECRET_NAMES = ("exfilguard-kafka-sasl", "exfilguard-kafka-tls")


def workloads(docs):
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def container(workload, name=None):
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    if name:
        assert containers[0]["name"] == name
    return containers[0]


def env_of(c):
    return {e["name"]: e for e in c["env"]}


def env_value(c, name):
    return env_of(c)[name]["value"]


# --- what is rendered ---------------------------------------------------------------------------

def test_default_render_has_the_core_and_no_optional_parts(default_docs):
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == sorted(["ConfigMap", "ServiceAccount", "Service", "Service", "StatefulSet",
                            "PodDisruptionBudget", "NetworkPolicy"])


def test_all_enabled_render_has_every_optional_part(all_docs):
    kinds = {d["kind"] for d in all_docs}
    assert {"Deployment", "Job", "ServiceMonitor"} <= kinds
    assert len(by_kind(all_docs, "NetworkPolicy")) == 2


@pytest.mark.parametrize("docs_fixture", ["default_docs", "all_docs"])
def test_every_resource_is_labelled_and_namespaced_by_the_release(docs_fixture, request):
    for doc in request.getfixturevalue(docs_fixture):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "exfilguard"
        assert labels["app.kubernetes.io/name"] == "exfilguard"
        assert "namespace" not in doc["metadata"], "helm sets the namespace at install"


# --- the worker StatefulSet ---------------------------------------------------------------------

def test_worker_statefulset_replicas_updates_and_state(default_docs):
    sts = one(default_docs, "StatefulSet", "-worker")
    spec = sts["spec"]
    assert spec["replicas"] == 2
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    assert spec["serviceName"] == one(default_docs, "Service", "-headless")["metadata"]["name"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"], "empty storageClassName means the default"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                          "whenScaled": "Retain"}
    c = container(sts, "worker")
    assert c["args"] == ["worker", "--config", CONFIG_PATH]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["data"]["mountPath"] == DATA_DIR == env_value(c, "EXFILGUARD_DATA_DIR")
    # The data volume is the claim, not a pod volume.
    assert "data" not in {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}


def test_storage_values_reach_the_claim(all_docs):
    claim = one(all_docs, "StatefulSet", "-worker")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "gp3"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_without_persistence_the_tables_live_in_an_emptydir():
    sts = one(render(set_values={"worker.persistence.enabled": "false"}), "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert "persistentVolumeClaimRetentionPolicy" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}}


@pytest.mark.parametrize("replicas,partitions", [(1, 4), (4, 4), (8, 8)])
def test_replicas_up_to_the_partition_count_render(replicas, partitions):
    docs = render(set_values={"worker.replicas": str(replicas),
                              "kafka.partitions": str(partitions)})
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == replicas
    assert env_value(container(sts), "EXFILGUARD_PARTITIONS") == str(partitions)


def test_more_replicas_than_partitions_is_refused():
    message = r"worker.replicas \(5\) must be at most kafka.partitions \(4\)"
    with pytest.raises(RenderError, match=message):
        render(set_values={"worker.replicas": "5"})


def test_probes_use_the_faust_web_endpoints(default_docs):
    c = container(one(default_docs, "StatefulSet"))
    (port,) = c["ports"]
    assert port == {"name": "http", "containerPort": 6066, "protocol": "TCP"}
    assert env_value(c, "EXFILGUARD_WEB_PORT") == "6066"
    assert env_value(c, "EXFILGUARD_WEB_HOST") == "0.0.0.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Recovery can be slow: the startup probe gives it minutes before liveness counts.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_web_port_change_moves_port_probes_and_env_together():
    docs = render(set_values={"worker.webPort": "8080"})
    c = container(one(docs, "StatefulSet"))
    assert c["ports"][0]["containerPort"] == 8080
    assert env_value(c, "EXFILGUARD_WEB_PORT") == "8080"
    assert one(docs, "Service", "-headless")["spec"]["ports"][0]["port"] == 8080


def test_the_live_view_is_off_unless_the_value_turns_it_on(default_docs):
    assert env_value(container(one(default_docs, "StatefulSet")), "EXFILGUARD_WEB_LIVE_VIEW") \
        == "false"
    docs = render(set_values={"worker.liveView": "true"})
    assert env_value(container(one(docs, "StatefulSet")), "EXFILGUARD_WEB_LIVE_VIEW") == "true"


def test_the_tables_of_earlier_versions_are_read_unless_turned_off(default_docs):
    assert env_value(container(one(default_docs, "StatefulSet")), "EXFILGUARD_LEGACY_TABLES") \
        == "true"
    docs = render(set_values={"kafka.legacyTables": "false"})
    assert env_value(container(one(docs, "StatefulSet")), "EXFILGUARD_LEGACY_TABLES") == "false"


def test_resources_are_set_on_every_container(all_docs):
    for w in workloads(all_docs):
        resources = container(w)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"] and resources["limits"]["cpu"]


def test_every_emptydir_has_a_size_limit(all_docs):
    for w in workloads(all_docs):
        for volume in w["spec"]["template"]["spec"]["volumes"]:
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), (w["metadata"]["name"], volume)


def test_the_replay_job_has_room_for_what_it_holds():
    job = one(render(set_values={"replay.enabled": "true", "replay.start": "2024-01-01T00:00:00Z",
                                 "replay.end": "2024-01-02T00:00:00Z",
                                 "replay.outputTopic": "replayed"}), "Job")
    assert container(job)["resources"]["limits"]["memory"] == "2Gi"


# --- security context and writable paths --------------------------------------------------------

def test_every_pod_is_locked_down(all_docs):
    for w in workloads(all_docs):
        pod = w["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] == 10001 and psc["fsGroup"] == 10001
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        csc = container(w)["securityContext"]
        assert csc["runAsNonRoot"] is True
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["privileged"] is False
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert csc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_writable_volumes_only_where_needed(all_docs):
    writable_allowed = {"/tmp", DATA_DIR}
    for w in workloads(all_docs):
        pod = w["spec"]["template"]["spec"]
        c = container(w)
        writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        assert writable == writable_allowed, w["metadata"]["name"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "256Mi"
        env = env_of(c)
        assert env["TMPDIR"]["value"] == "/tmp" and env["HOME"]["value"] == "/tmp"


def test_uid_matches_the_image():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001(:10001)?$", dockerfile, re.M)
    assert 'ENTRYPOINT ["exfilguard"]' in dockerfile
    assert 'CMD ["worker"]' in dockerfile
    assert re.search(r"^EXPOSE 6066$", dockerfile, re.M)
    assert f"EXFILGUARD_DATA_DIR={DATA_DIR}" in dockerfile
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(stages) == 2, "multi-stage: a builder and a runtime stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.M)


# --- config -------------------------------------------------------------------------------------

def config_of(docs):
    cm = one(docs, "ConfigMap", "-config")
    return yaml.safe_load(cm["data"]["config.yaml"])


def test_default_config_is_empty_so_program_defaults_apply(default_docs):
    assert config_of(default_docs) == {}


def test_config_values_render_into_the_config_file(all_docs, all_values):
    config = config_of(all_docs)
    # geoip.volume (all-enabled mounts one) turns `geoip: true` into the mounted files' paths.
    assert config.pop("geoip") == {"country_db": "/etc/exfilguard/geoip/GeoLite2-Country.mmdb",
                                   "asn_db": "/etc/exfilguard/geoip/GeoLite2-ASN.mmdb"}
    assert config == {k: v for k, v in all_values["config"].items()
                      if v is not None and k != "geoip"}
    assert config["associated_accounts"] == ["444455556666"]  # a string, not a number
    assert config["account_networks"] == {"111122223333": ["3.85.10.20/32", "10.0.0.0/16"]}
    assert config["suppression_rules"][0]["remote_account"] == "777788889999"
    # `geoip: false` is a value, not "unset": test_notifiers_and_monitoring checks it renders.


def test_config_is_mounted_where_the_program_reads_it(all_docs):
    cm_name = one(all_docs, "ConfigMap", "-config")["metadata"]["name"]
    for w in workloads(all_docs):
        c = container(w)
        assert env_value(c, "EXFILGUARD_CONFIG") == CONFIG_PATH
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
        assert mount == {"name": "config", "mountPath": CONFIG_PATH, "subPath": "config.yaml",
                         "readOnly": True}
        volumes = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == cm_name


def test_a_config_change_rolls_the_workers(default_docs):
    before = one(default_docs, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    changed = render(set_values={"config.trusted_ip_cidrs": "{198.51.100.0/24}"})
    after = one(changed, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


@pytest.mark.parametrize("key,value,message", [
    ("worker.replica", "3", "replica"),                                 # typo of a chart key
    ("config.trusted_cidrs", "{10.0.0.0/8}", "trusted_cidrs"),          # typo of a config key
    ("config.trusted_ip_cidrs", "{10.0.0.0/33}", "trusted_ip_cidrs"),   # not a CIDR
    ("config.associated_accounts", "{4444555566}", "associated_accounts"),
    ("kafka.securityProtocol", "TLS", "securityProtocol"),
    ("kafka.sasl.mechanism", "GSSAPI", "mechanism"),
    ("kafka.topics.input", "cloud trail", "input"),
    ("worker.webPort", "80", "webPort"),
    ("image.pullPolicy", "Sometimes", "pullPolicy"),
])
def test_schema_rejects_typos_and_bad_values(key, value, message):
    with pytest.raises(RenderError, match=message):
        render(set_values={key: value})


def test_schema_rejects_an_unquoted_account_id():
    # YAML reads 444455556666 as a number, which would render as 4.44455556666e+11.
    with pytest.raises(RenderError, match="associated_accounts"):
        render(set_values={"config.associated_accounts[0]": "444455556666"})


def test_suppression_rule_needs_a_name_and_known_keys():
    with pytest.raises(RenderError, match="name"):
        render(set_values={"config.suppression_rules[0].role": "ci"})
    with pytest.raises(RenderError, match="remote_ip"):
        render(set_values={"config.suppression_rules[0].name": "x",
                           "config.suppression_rules[0].remote_ip": "1.2.3.4"})


def test_schema_objects_are_closed():
    """Every object the schema describes field by field rejects unknown fields."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "#")
    # if/then clauses only add constraints to objects that are closed elsewhere.
    assert [p for p in open_objects if "/if" not in p and "/then" not in p] == []


# --- Kafka connection and secrets ---------------------------------------------------------------

def test_plaintext_defaults(default_docs):
    env = env_of(container(one(default_docs, "StatefulSet")))
    assert env["EXFILGUARD_BOOTSTRAP_SERVERS"]["value"] == "kafka:9092"
    assert env["EXFILGUARD_SECURITY_PROTOCOL"]["value"] == "PLAINTEXT"
    assert not {"EXFILGUARD_SASL_MECHANISM", "EXFILGUARD_SASL_USERNAME", "EXFILGUARD_SASL_PASSWORD",
                "EXFILGUARD_SSL_CAFILE"} & env.keys()
    assert env["EXFILGUARD_TOPIC_INPUT"]["value"] == "cloudtrail"
    assert env["EXFILGUARD_TOPIC_FINDINGS"]["value"] == "findings"
    assert env["EXFILGUARD_TOPIC_DLQ"]["value"] == "cloudtrail-dlq"
    assert env["EXFILGUARD_REPLICATION_FACTOR"]["value"] == "3"
    assert env["EXFILGUARD_APP_ID"]["value"] == "exfilguard"
    assert env["EXFILGUARD_STALL_SECONDS"]["value"] == "120"  # /readyz false past a stall


def test_sasl_credentials_come_from_the_existing_secret(all_docs):
    for w in workloads(all_docs):
        env = env_of(container(w))
        assert env["EXFILGUARD_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["EXFILGUARD_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        for name, key in (("EXFILGUARD_SASL_USERNAME", "user"),
                          ("EXFILGUARD_SASL_PASSWORD", "pass")):
            assert "value" not in env[name]
            assert env[name]["valueFrom"] == {
                "secretKeyRef": {"name": "exfilguard-kafka-sasl", "key": key}}


def test_tls_files_are_mounted_read_only_from_the_existing_secret(all_docs):
    for w in workloads(all_docs):
        c = container(w)
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "kafka-tls"]
        assert mount["readOnly"] is True
        volumes = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
        secret = volumes["kafka-tls"]["secret"]
        assert secret["secretName"] == "exfilguard-kafka-tls"
        assert secret["defaultMode"] == 0o440
        assert [i["key"] for i in secret["items"]] == ["ca.crt", "tls.crt", "tls.key"]
        base = mount["mountPath"]
        assert env_value(c, "EXFILGUARD_SSL_CAFILE") == f"{base}/ca.crt"
        assert env_value(c, "EXFILGUARD_SSL_CERTFILE") == f"{base}/tls.crt"
        assert env_value(c, "EXFILGUARD_SSL_KEYFILE") == f"{base}/tls.key"


def test_no_secret_is_ever_rendered_or_inlined(all_docs):
    assert by_kind(all_docs, "Secret") == []
    for w in workloads(all_docs):
        for e in container(w)["env"]:
            if e["name"].endswith(("PASSWORD", "USERNAME")):
                assert set(e) == {"name", "valueFrom"}, e
    # The secret names appear only where they are referenced.
    text = yaml.safe_dump_all(all_docs)
    for name in SECRET_NAMES:
        refs = text.count(name)
        per_workload = 2 if name.endswith("sasl") else 1  # username and password refs; one volume
        assert refs == per_workload * len(workloads(all_docs)), name


def test_a_password_value_has_nowhere_to_go():
    with pytest.raises(RenderError, match="password"):
        render(set_values={"kafka.sasl.password": "hunter2"})


def test_sasl_needs_an_existing_secret():
    with pytest.raises(RenderError, match="existingSecret"):
        render(set_values={"kafka.securityProtocol": "SASL_SSL", "kafka.sasl.mechanism": "PLAIN"})


def test_tls_secret_without_ssl_is_refused():
    with pytest.raises(RenderError, match="securityProtocol"):
        render(set_values={"kafka.tls.existingSecret": "tls"})


def test_client_cert_and_key_go_together():
    with pytest.raises(RenderError, match="certKey and kafka.tls.keyKey"):
        render(set_values={"kafka.securityProtocol": "SSL", "kafka.tls.existingSecret": "tls",
                           "kafka.tls.certKey": "tls.crt"})


def test_ssl_with_only_a_ca(default_docs):
    docs = render(set_values={"kafka.securityProtocol": "SSL", "kafka.tls.existingSecret": "tls"})
    c = container(one(docs, "StatefulSet"))
    assert env_value(c, "EXFILGUARD_SSL_CAFILE").endswith("/ca.crt")
    assert "EXFILGUARD_SSL_CERTFILE" not in env_of(c)


# --- service account, services, PDB, ServiceMonitor ---------------------------------------------

def test_service_account_carries_the_irsa_annotation(all_docs):
    sa = one(all_docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/exfilguard"}
    assert sa["automountServiceAccountToken"] is False
    for w in workloads(all_docs):
        assert w["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_selectors_match_the_pods(all_docs):
    for w in workloads(all_docs):
        if w["kind"] == "Job":
            continue
        selector = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), w["metadata"]["name"]
    worker_labels = one(all_docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    for svc in by_kind(all_docs, "Service"):
        assert svc["spec"]["selector"].items() <= worker_labels.items()
    pdb = one(all_docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    # The forwarder's pods are not the workers': they must not be counted by the PDB or services.
    fwd_labels = one(all_docs, "Deployment", "-forwarder")["spec"]["template"]["metadata"]["labels"]
    assert not pdb["spec"]["selector"]["matchLabels"].items() <= fwd_labels.items()


def test_headless_and_metrics_services(default_docs):
    headless = one(default_docs, "Service", "-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    metrics = one(default_docs, "Service", "-metrics")
    assert metrics["spec"]["type"] == "ClusterIP"
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 6066, "targetPort": "http",
                                         "protocol": "TCP"}]


DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                      r"(([0-9]+)s)?(([0-9]+)ms)?)$")  # the Prometheus Operator CRD's pattern
ENDPOINT_FIELDS = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels"}


def test_service_monitor_is_a_valid_prometheus_operator_resource(all_docs):
    """kubernetes-validate has no schema for this CRD: check its shape here instead."""
    sm = one(all_docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = sm["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": ["security"]}
    metrics = one(all_docs, "Service", "-metrics")
    assert spec["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    headless = one(all_docs, "Service", "-headless")
    assert not spec["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items(), \
        "scraping both services would count every pod twice"
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= ENDPOINT_FIELDS
    assert endpoint["port"] == metrics["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])
    assert isinstance(endpoint["honorLabels"], bool)


# --- NetworkPolicy ------------------------------------------------------------------------------

def test_worker_network_policy(default_docs):
    np = one(default_docs, "NetworkPolicy", "-worker")
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    dns, kafka, aws = spec["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert kafka["ports"] == [{"port": 9092, "endPort": 9098, "protocol": "TCP"}]
    assert aws["ports"] == [{"port": 443, "protocol": "TCP"}]
    (block,) = aws["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
            "169.254.0.0/16"} <= set(block["ipBlock"]["except"])
    for rule in spec["egress"]:
        assert rule.get("ports"), "every egress rule is limited to ports"
    # Narrowed by default: metrics scraped from the monitoring namespace, DNS to the cluster's.
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {
            "k8s-app": "kube-dns"}}}]


def test_kafka_egress_goes_to_the_brokers_cidrs_when_given():
    docs = render(set_values={"networkPolicy.kafka.cidrs[0]": "10.20.0.0/16",
                              "networkPolicy.kafka.cidrs[1]": "10.21.0.0/16"})
    _, kafka, _ = one(docs, "NetworkPolicy", "-worker")["spec"]["egress"]
    assert kafka["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}},
                           {"ipBlock": {"cidr": "10.21.0.0/16"}}]


def test_client_network_policy_denies_all_ingress(all_docs):
    np = one(all_docs, "NetworkPolicy", "-clients")
    assert np["spec"]["ingress"] == []
    assert np["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In",
         "values": ["forwarder", "replay", "notify-securityhub", "notify-eventbridge",
                    "notify-ocsf", "notify-webhook", "notify-respond"]}]
    worker_np = one(all_docs, "NetworkPolicy", "-worker")
    assert np["spec"]["egress"] == worker_np["spec"]["egress"]
    assert worker_np["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert worker_np["spec"]["egress"][-1]["to"] == [{"ipBlock": {"cidr": "169.254.170.23/32"}}]


def test_network_policy_can_be_disabled():
    assert by_kind(render(set_values={"networkPolicy.enabled": "false"}), "NetworkPolicy") == []


# --- forwarder and replay -----------------------------------------------------------------------

def test_forwarder_deployment(all_docs):
    dep = one(all_docs, "Deployment", "-forwarder")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = container(dep, "forwarder")
    assert c["args"] == ["forward", "--topic", "cloudtrail", "--follow", "--no-progress",
                         "--poll-seconds", "30",
                         "s3://example-cloudtrail/AWSLogs/111122223333/CloudTrail/"]
    assert "ports" not in c and "livenessProbe" not in c  # no web server in the forwarder


def test_forwarder_needs_a_source():
    with pytest.raises(RenderError, match="sources"):
        render(set_values={"forwarder.enabled": "true"})
    with pytest.raises(RenderError, match="sources"):
        render(set_values={"forwarder.enabled": "true", "forwarder.sources": "{/data/trail.json}"})


def test_replay_job(all_docs):
    job = one(all_docs, "Job")
    assert re.fullmatch(r"exfilguard-replay-[0-9a-f]{8}", job["metadata"]["name"])
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    c = container(job, "replay")
    assert c["args"] == ["replay", "--topic", "cloudtrail", "--start", "2024-05-01T00:00:00Z",
                         "--end", "2024-05-02T00:00:00Z", "--output-topic", "findings-replay",
                         "--config", CONFIG_PATH]
    # Its own consumer group and tables, never the live workers'.
    assert env_value(c, "EXFILGUARD_APP_ID") == "exfilguard-replay"


def test_a_new_replay_range_is_a_new_job(all_docs):
    other = render(CHART / "ci" / "all-enabled-values.yaml",
                   set_values={"replay.start": "2024-05-01T12:00:00Z"})
    assert one(other, "Job")["metadata"]["name"] != one(all_docs, "Job")["metadata"]["name"]


@pytest.mark.parametrize("values,message", [
    ({"replay.enabled": "true"}, "start"),
    ({"replay.enabled": "true", "replay.start": "2024-05-01T00:00:00Z",
      "replay.end": "2024-05-02T00:00:00Z", "replay.outputTopic": "findings"}, "live findings"),
    ({"replay.start": "yesterday"}, "start"),
])
def test_replay_refuses_bad_ranges(values, message):
    with pytest.raises(RenderError, match=message):
        render(set_values=values)


# --- image --------------------------------------------------------------------------------------

def test_image_defaults_to_the_app_version_and_honours_a_digest(default_docs, all_docs):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = container(one(default_docs, "StatefulSet"))["image"]
    assert image == f"exfilguard:{chart['appVersion']}"
    for w in workloads(all_docs):
        assert container(w)["image"] == (
            "registry.example.com/security/exfilguard@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")


# --- the program's own contract -----------------------------------------------------------------

@pytest.mark.parametrize("docs_fixture", ["default_docs", "all_docs"])
def test_the_program_accepts_the_rendered_config(docs_fixture, request):
    """The ConfigMap goes through the program's own config parser, as the worker would read it."""
    core_config = program_module("streams.core.settings")
    parsed = core_config.parse_config(config_of(request.getfixturevalue(docs_fixture)))
    assert isinstance(parsed, core_config.DetectionConfig)


def test_the_schema_knows_exactly_the_programs_config_keys():
    core_config = program_module("streams.core.settings")
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    assert set(config) == set(core_config._KEYS)
    rule = config["suppression_rules"]["items"]["properties"]
    assert set(rule) == set(core_config._RULE_KEYS)
    assert set(rule["finding_type"]["enum"]) == set(core_config.FINDING_TYPES)


@pytest.mark.parametrize("docs_fixture", ["default_docs", "all_docs"])
def test_every_variable_the_chart_sets_is_one_the_program_reads(docs_fixture, request):
    settings = program_module("streams.kafka.settings")
    known = {settings.env_name(f.name) for f in dataclasses.fields(settings.KafkaSettings)}
    known.add("EXFILGUARD_CONFIG")
    for w in workloads(request.getfixturevalue(docs_fixture)):
        names = {n for n in env_of(container(w)) if n.startswith("EXFILGUARD_")}
        assert names <= known, names - known


def test_the_program_reads_the_default_environment(default_docs):
    settings = program_module("streams.kafka.settings")
    env = {n: e["value"] for n, e in env_of(container(one(default_docs, "StatefulSet"))).items()}
    kafka = settings.load_kafka_settings(None, env)
    assert kafka.data_dir == DATA_DIR
    assert (kafka.web_host, kafka.web_port) == ("0.0.0.0", 6066)
    assert (kafka.partitions, kafka.replication_factor) == (4, 3)
    assert kafka.bootstrap_servers == "kafka:9092"


def test_forwarder_on_an_sqs_queue_runs_several_pods():
    docs = render(set_values={"forwarder.enabled": "true", "forwarder.replicas": "3",
                              "forwarder.sqsQueueUrl":
                                  "https://sqs.us-east-1.amazonaws.com/111122223333/trail"})
    dep = one(docs, "Deployment", "-forwarder")
    assert dep["spec"]["replicas"] == 3 and "strategy" not in dep["spec"]
    assert container(dep, "forwarder")["args"] == [
        "forward", "--topic", "cloudtrail", "--sqs-queue-url",
        "https://sqs.us-east-1.amazonaws.com/111122223333/trail", "--no-progress"]


def test_ip_ranges_refresh_is_an_init_container_writing_the_configured_snapshot():
    docs = render(set_values={"ipRanges.refresh.enabled": "true"})
    worker = one(docs, "StatefulSet", "-worker")
    [init] = worker["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "ip-ranges" and "exfilguard ip-ranges update" in init["args"][0]
    assert init["args"][1] == "/var/lib/exfilguard/ip-ranges.json"
    config = one(docs, "ConfigMap", "-config")
    assert "aws_ip_ranges: /var/lib/exfilguard/ip-ranges.json" in config["data"]["config.yaml"]
    assert "initContainers" not in one(render(), "StatefulSet", "-worker")["spec"]["template"][
        "spec"]
