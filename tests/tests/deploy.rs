//! deploy/ holds what an operator runs: the Kubernetes manifests, the
//! compose file, the container image build, systemd units and the
//! certificate tooling. Nothing here starts a cluster; these tests render
//! and check what can be checked without one: every manifest parses and
//! fits together (selectors, ports, volumes, Secrets, the config each
//! service reads), the compose file parses under the Compose specification,
//! and `freeport certs` issues what `freeport config check` then accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use freeport_tests::{freeport_bin, workspace};
use serde::Deserialize;
use serde_json::Value;

/// The Secrets an operator creates before applying the manifests
/// (docs/operations.md).
const SECRETS: [&str; 2] = ["freeport-tls", "freeport-secrets"];

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document in `text`, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("YAML document"))
        .filter(|document| !document.is_null())
        .collect()
}

/// The configuration file's JSON Schema, from the binary that reads it.
fn config_schema() -> jsonschema::Validator {
    let output = Command::new(freeport_bin())
        .args(["config", "schema"])
        .output()
        .expect("freeport config schema");
    assert!(output.status.success());
    let schema: Value = serde_json::from_slice(&output.stdout).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("a valid schema")
}

/// Checks `text` (TOML) against the configuration schema and returns it.
fn checked_config(what: &str, text: &str) -> Value {
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{what}: {e}"));
    let config = serde_json::to_value(table).expect("config as JSON");
    let problems: Vec<String> = config_schema()
        .iter_errors(&config)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(problems.is_empty(), "{what}: {problems:?}");
    config
}

fn port_of(address: &Value) -> u64 {
    address
        .as_str()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .expect("host:port")
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {value}"))
}

#[test]
fn kubernetes_manifests_fit_together() {
    let kustomization = documents(&read("deploy/kubernetes/kustomization.yaml"));
    let resources: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_string())
        .collect();
    let mut objects = Vec::new();
    for resource in &resources {
        objects.extend(documents(&read(&format!("deploy/kubernetes/{resource}"))));
    }
    let api_versions = BTreeMap::from([
        ("Namespace", "v1"),
        ("ConfigMap", "v1"),
        ("Service", "v1"),
        ("StatefulSet", "apps/v1"),
        ("Deployment", "apps/v1"),
        ("PodDisruptionBudget", "policy/v1"),
    ]);
    let mut names = BTreeSet::new();
    for object in &objects {
        let kind = str_at(object, "/kind");
        assert_eq!(
            api_versions.get(kind).copied(),
            Some(str_at(object, "/apiVersion")),
            "apiVersion of {kind}"
        );
        let name = str_at(object, "/metadata/name");
        assert!(names.insert((kind, name)), "{kind} {name} twice");
    }

    let config_maps: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .map(|o| (str_at(o, "/metadata/name"), &o["data"]))
        .collect();
    let config = checked_config(
        "the ConfigMap's freeport.toml",
        config_maps["freeport-config"]["freeport.toml"]
            .as_str()
            .expect("freeport.toml"),
    );

    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .collect();
    let mut services_run = BTreeSet::new();
    for workload in &workloads {
        let name = str_at(workload, "/metadata/name");
        let spec = &workload["spec"];
        let labels = spec["template"]["metadata"]["labels"]
            .as_object()
            .expect("labels");
        for (key, value) in spec["selector"]["matchLabels"]
            .as_object()
            .expect("selector")
        {
            assert_eq!(
                labels.get(key),
                Some(value),
                "{name}: the selector matches its pods"
            );
        }
        let pod = &spec["template"]["spec"];
        let volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| (str_at(v, "/name"), v))
            .collect();
        let claims: BTreeSet<&str> = spec["volumeClaimTemplates"]
            .as_array()
            .map(|c| c.iter().map(|c| str_at(c, "/metadata/name")).collect())
            .unwrap_or_default();
        for volume in volumes.values() {
            if let Some(map) = volume["configMap"]["name"].as_str() {
                assert!(
                    config_maps.contains_key(map),
                    "{name} mounts ConfigMap {map}"
                );
            }
            if let Some(secret) = volume["secret"]["secretName"].as_str() {
                assert!(SECRETS.contains(&secret), "{name} mounts Secret {secret}");
            }
        }
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("arg"))
            .collect();
        let service = args[0];
        assert!(
            ["catalog", "link", "portal"].contains(&service),
            "{name} runs a Freeport service, not {service}"
        );
        services_run.insert(service);
        assert!(
            config[service].is_object(),
            "the config has a [{service}] section"
        );
        let mut mounts = BTreeMap::new();
        for mount in container["volumeMounts"].as_array().expect("mounts") {
            let volume = str_at(mount, "/name");
            assert!(
                volumes.contains_key(volume) || claims.contains(volume),
                "{name} mounts volume {volume}, which it does not define"
            );
            mounts.insert(str_at(mount, "/mountPath"), volume);
        }
        assert_eq!(
            args[1..],
            ["--config", "/etc/freeport/freeport.toml"],
            "{name}"
        );
        assert_eq!(
            mounts.get("/etc/freeport"),
            Some(&"config"),
            "{name} mounts its config"
        );
        // Every file the service's section names is in a mounted Secret.
        let section = config[service].to_string();
        for path in [
            "/certs/ca.pem",
            &format!("/certs/{service}.pem"),
            &format!("/certs/{service}.key"),
        ] {
            assert!(section.contains(path), "[{service}] reads {path}");
        }
        assert!(
            mounts.contains_key("/certs"),
            "{name} mounts the certificates"
        );
        for env in container["env"].as_array().into_iter().flatten() {
            let secret = str_at(env, "/valueFrom/secretKeyRef/name");
            assert!(SECRETS.contains(&secret), "{name} reads Secret {secret}");
            assert!(
                str_at(env, "/name").starts_with("FREEPORT_"),
                "{name}: {env}"
            );
        }
        // Ports: the ones the config listens on, probes on the ops port.
        let ports: BTreeMap<&str, u64> = container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    str_at(p, "/name"),
                    p["containerPort"].as_u64().expect("port"),
                )
            })
            .collect();
        assert_eq!(
            Some(&port_of(&config[service]["ops_listen"])),
            ports.get("ops"),
            "{name}"
        );
        if let Some(listen) = config[service].get("listen") {
            assert!(
                ports.values().any(|p| *p == port_of(listen)),
                "{name} exposes its listener"
            );
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            let check = &container[probe]["httpGet"];
            assert_eq!(check["port"], "ops", "{name} {probe}");
            assert_eq!(check["scheme"], "HTTPS", "{name} {probe}");
        }
        let ready = container["readinessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap_or_default();
        let expected = if service == "portal" {
            // Serves from its view of the catalog while the catalog is away.
            "/readyz?exclude=catalog,catalog_view"
        } else {
            "/readyz"
        };
        assert_eq!(ready, expected, "{name}");
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/livez",
            "{name}"
        );
        if service != "catalog" {
            assert!(
                spec["replicas"].as_u64() >= Some(2),
                "{name} runs several replicas"
            );
        }
    }
    assert_eq!(services_run, BTreeSet::from(["catalog", "link", "portal"]));

    // Services select pods that exist, on ports those pods name.
    for service in objects.iter().filter(|o| o["kind"] == "Service") {
        let name = str_at(service, "/metadata/name");
        let selector = service["spec"]["selector"].as_object().expect("selector");
        let pod = workloads
            .iter()
            .find(|w| {
                let labels = &w["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .unwrap_or_else(|| panic!("Service {name} selects no pods"));
        let container_ports: BTreeSet<&str> = pod["spec"]["template"]["spec"]["containers"][0]
            ["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| str_at(p, "/name"))
            .collect();
        for port in service["spec"]["ports"].as_array().expect("ports") {
            let target = str_at(port, "/targetPort");
            assert!(
                container_ports.contains(target),
                "Service {name} targets port {target}"
            );
        }
    }
    // The catalog's clients reach it by the name its certificate carries.
    for service in ["link", "portal"] {
        assert_eq!(config[service]["catalog_url"], "https://catalog:7001");
    }
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let text = read("deploy/compose/compose.yaml");
    // YAML merge keys (`<<: *freeport`) are applied as docker compose does.
    let mut merged: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    merged.apply_merge().expect("merge keys");
    let compose = compose_spec::Compose::deserialize(merged.clone())
        .unwrap_or_else(|e| panic!("compose.yaml: {e}"));
    let services: BTreeSet<String> = compose.services.keys().map(ToString::to_string).collect();
    for needed in [
        "catalog",
        "link",
        "portal",
        "certs",
        "bootstrap",
        "kafka-acme",
        "kafka-globex",
    ] {
        assert!(services.contains(needed), "compose runs {needed}");
    }
    let config = checked_config(
        "deploy/compose/freeport.toml",
        &read("deploy/compose/freeport.toml"),
    );
    // Every cluster is a broker the compose file runs.
    for (name, cluster) in config["clusters"].as_object().expect("clusters") {
        let host = str_at(cluster, "/bootstrap")
            .split(':')
            .next()
            .unwrap_or_default();
        assert!(
            services.contains(host),
            "cluster {name} is broker {host} of the compose file"
        );
    }
    let raw: Value = serde_json::to_value(&merged).expect("compose as JSON");
    for service in ["catalog", "link", "portal"] {
        let command = raw["services"][service]["command"]
            .as_array()
            .expect("command");
        assert_eq!(command[0], service);
        assert_eq!(command[2], "/etc/freeport/freeport.toml");
    }
    assert!(
        str_at(&raw, "/services/certs/command/0").contains("freeport certs service portal"),
        "the certs service issues the portal's certificate"
    );
}

#[test]
fn the_image_runs_the_binary_as_a_user_that_is_not_root() {
    let dockerfile = read("deploy/Dockerfile");
    let instructions: Vec<(&str, &str)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let stages: Vec<&str> = instructions
        .iter()
        .filter(|(op, _)| *op == "FROM")
        .map(|(_, arg)| *arg)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a slim runtime stage");
    assert!(stages[0].ends_with("AS build"));
    let runtime: Vec<&(&str, &str)> = instructions
        .iter()
        .skip_while(|(op, arg)| *op != "FROM" || arg.ends_with("AS build"))
        .collect();
    let user = runtime
        .iter()
        .find(|(op, _)| *op == "USER")
        .map(|(_, arg)| *arg)
        .expect("a USER in the runtime stage");
    assert_ne!(user, "root");
    assert_ne!(user, "0");
    assert!(runtime
        .iter()
        .any(|(op, arg)| *op == "COPY"
            && arg.starts_with("--from=build /src/target/release/freeport ")));
    assert!(instructions.iter().any(
        |(op, arg)| *op == "RUN" && arg.contains("cargo build --release --locked -p freeport")
    ));
    assert!(runtime
        .iter()
        .any(|(op, arg)| *op == "ENTRYPOINT" && arg.contains("\"freeport\"")));
    let exposed: BTreeSet<u64> = runtime
        .iter()
        .filter(|(op, _)| *op == "EXPOSE")
        .flat_map(|(_, arg)| arg.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect();
    let config = checked_config(
        "deploy/compose/freeport.toml",
        &read("deploy/compose/freeport.toml"),
    );
    for (service, key) in [
        ("catalog", "listen"),
        ("portal", "listen"),
        ("catalog", "ops_listen"),
        ("link", "ops_listen"),
        ("portal", "ops_listen"),
    ] {
        let port = port_of(&config[service][key]);
        assert!(
            exposed.contains(&port),
            "the image exposes {service}.{key} ({port})"
        );
    }
}

#[test]
fn systemd_units_run_each_service() {
    for service in ["catalog", "link", "portal"] {
        let path = format!("deploy/systemd/freeport-{service}.service");
        let text = read(&path);
        let mut section = String::new();
        let mut keys: BTreeMap<(String, String), String> = BTreeMap::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: {line}"));
            keys.insert((section.clone(), key.to_string()), value.to_string());
        }
        let get = |s: &str, k: &str| {
            keys.get(&(s.to_string(), k.to_string()))
                .map(String::as_str)
        };
        assert_eq!(
            get("Service", "ExecStart"),
            Some(
                format!("/usr/local/bin/freeport {service} --config /etc/freeport/freeport.toml")
                    .as_str()
            ),
            "{path}"
        );
        assert_eq!(get("Service", "User"), Some("freeport"), "{path}");
        assert_eq!(get("Service", "KillSignal"), Some("SIGTERM"), "{path}");
        assert_eq!(get("Service", "NoNewPrivileges"), Some("yes"), "{path}");
        assert_eq!(
            get("Install", "WantedBy"),
            Some("multi-user.target"),
            "{path}"
        );
        assert!(get("Unit", "Description").is_some(), "{path}");
    }
}

fn freeport(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(freeport_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run freeport")
}

#[test]
fn certificates_from_freeport_certs_pass_the_config_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    let certs_dir = certs.to_str().expect("utf-8 path");
    let refused = freeport(
        &["certs", "service", "portal", "--dir", certs_dir],
        dir.path(),
    );
    assert!(!refused.status.success(), "no CA yet");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("freeport certs ca"));
    assert!(freeport(&["certs", "ca", "--dir", certs_dir], dir.path())
        .status
        .success());
    let ca = std::fs::read(certs.join("ca.pem")).expect("CA");
    assert!(freeport(&["certs", "ca", "--dir", certs_dir], dir.path())
        .status
        .success());
    assert_eq!(
        std::fs::read(certs.join("ca.pem")).expect("CA"),
        ca,
        "an existing CA is kept"
    );
    for service in ["catalog", "link", "portal"] {
        let issued = freeport(
            &[
                "certs",
                "service",
                service,
                "--dir",
                certs_dir,
                "--host",
                "portal.example.com",
                "--days",
                "30",
            ],
            dir.path(),
        );
        assert!(
            issued.status.success(),
            "{}",
            String::from_utf8_lossy(&issued.stderr)
        );
    }
    let partner = freeport(
        &["certs", "partner", "globex", "--dir", certs_dir],
        dir.path(),
    );
    assert!(partner.status.success());
    let pem = std::fs::read(certs.join("org-globex.pem")).expect("partner certificate");
    let der = <rustls::pki_types::CertificateDer<'static> as rustls::pki_types::pem::PemObject>::from_pem_slice(&pem)
        .expect("PEM");
    assert_eq!(
        freeport_common::tls::certificate_org(&der).as_deref(),
        Some("globex")
    );
    let not_after = freeport_common::tls::certificate_not_after(
        &std::fs::read(certs.join("portal.pem")).expect("portal certificate"),
    )
    .expect("expiry");
    let days = (not_after * 1000 - freeport_common::now_ms()) / 86_400_000;
    assert!((29..=30).contains(&days), "--days 30 gives {days} days");

    let tls = |service: &str| {
        format!(
            "tls = {{ ca = \"{certs_dir}/ca.pem\", cert = \"{certs_dir}/{service}.pem\", key = \"{certs_dir}/{service}.key\" }}\n"
        )
    };
    let config = format!(
        "[clusters.acme]\nowner = \"acme\"\nbootstrap = \"kafka:9092\"\n\
         [catalog]\nlisten = \"0.0.0.0:7001\"\nstore = \"memory://\"\n{}\
         [link]\ncatalog_url = \"https://catalog:7001\"\n{}\
         [portal]\nlisten = \"0.0.0.0:8443\"\ncatalog_url = \"https://catalog:7001\"\nclient_ca = \"{certs_dir}/ca.pem\"\n{}",
        tls("catalog"),
        tls("link"),
        tls("portal")
    );
    std::fs::write(dir.path().join("good.toml"), &config).expect("write");
    let checked = freeport(&["config", "check", "good.toml"], dir.path());
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout)
        .contains("ok (sections: catalog, link, portal; clusters: acme)"));

    // The link's key in the portal's place, an unknown key, a bad address:
    // all three reported in one run.
    let broken = config
        .replacen(
            &format!("{certs_dir}/portal.key"),
            &format!("{certs_dir}/link.key"),
            1,
        )
        .replace("[link]\n", "[link]\ncolour = \"red\"\n")
        .replace("0.0.0.0:8443", "everywhere");
    std::fs::write(dir.path().join("bad.toml"), broken).expect("write");
    let checked = freeport(&["config", "check", "bad.toml"], dir.path());
    assert!(!checked.status.success());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(stderr.contains("link: unknown key(s) colour"), "{stderr}");
    assert!(
        stderr.contains("portal.listen: \"everywhere\" is not an IP address"),
        "{stderr}"
    );
    // The shape is wrong, so the files are not looked at yet; fix it and
    // the key that does not fit shows.
    let broken = config.replacen(
        &format!("{certs_dir}/portal.key"),
        &format!("{certs_dir}/link.key"),
        1,
    );
    std::fs::write(dir.path().join("bad.toml"), broken).expect("write");
    let checked = freeport(&["config", "check", "bad.toml"], dir.path());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success());
    assert!(
        stderr.contains("portal.tls: the certificate and key do not make an identity"),
        "{stderr}"
    );
}
