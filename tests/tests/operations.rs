//! What an operator sees: every service's operations listener (`/livez`,
//! `/readyz`, `/metrics`), readiness that follows the catalog and the
//! clusters as they come and go, the metrics the issue names, and the
//! Grafana dashboard and alert rules in deploy/ naming only series the
//! services really export.

use std::collections::BTreeSet;
use std::time::Duration;

use freeport_tests::{eventually, metric, signal, workspace, TwoOrgs};
use serde_json::{json, Value};

const SERVICES: [&str; 3] = ["catalog", "link", "portal"];

async fn readyz(orgs: &TwoOrgs, service: &str, query: &str) -> (u16, Value) {
    let response = orgs
        .hub
        .ops_get(service, &format!("/readyz{query}"), false)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("readyz answers JSON"))
}

/// Waits until `service`'s `/readyz` answers `status`, and returns the body.
async fn until_readyz(orgs: &TwoOrgs, service: &str, query: &str, status: u16) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{service} /readyz{query} to answer {status}"),
        || async move {
            let (got, body) = readyz(orgs, service, query).await;
            (got == status).then_some(body)
        },
    )
    .await
}

#[tokio::test]
async fn every_service_reports_liveness_readiness_and_metrics() {
    let orgs = TwoOrgs::start().await;
    let hub = &orgs.hub;

    for service in SERVICES {
        let live = hub.ops_get(service, "/livez", false).await;
        assert_eq!(live.status(), 200, "{service} /livez");
        // Prometheus needs a certificate; probes do not.
        let refused = hub.ops_get(service, "/metrics", false).await;
        assert_eq!(
            refused.status(),
            401,
            "{service} /metrics without a certificate"
        );
    }
    let catalog = until_readyz(&orgs, "catalog", "", 200).await;
    assert_eq!(catalog["checks"]["store"]["ok"], true, "{catalog}");
    for (service, own) in [("link", None), ("portal", Some("catalog_view"))] {
        let body = until_readyz(&orgs, service, "", 200).await;
        let checks: BTreeSet<&str> = body["checks"]
            .as_object()
            .expect("checks")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = BTreeSet::from(["catalog", "cluster:acme", "cluster:globex"]);
        expected.extend(own);
        assert_eq!(checks, expected, "{service}: {body}");
    }

    // Traffic: a contract through its whole life, records, a refusal.
    orgs.stream("orders", 2, json!({})).await;
    let contract = orgs
        .active_contract("orders", "globex.orders", Value::Null)
        .await;
    let (status, _) = hub
        .produce(
            "orders",
            &orgs.owner,
            json!([{"key": "k", "value": {"n": 1}}]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = hub
        .call("GET", "/v1/streams/nope", &orgs.partner, None)
        .await;
    assert_eq!(status, 404);

    let contract_label = format!("contract=\"{contract}\"");
    let link = eventually(
        Duration::from_secs(30),
        "the link to count the mirrored record",
        || async {
            let text = hub.metrics("link").await;
            (metric(&text, "freeport_link_records_total", &[&contract_label]) >= Some(1.0))
                .then_some(text)
        },
    )
    .await;
    assert_eq!(
        metric(
            &link,
            "freeport_link_state",
            &[&contract_label, "state=\"running\""]
        ),
        Some(1.0),
        "{link}"
    );
    assert!(metric(&link, "freeport_link_lag_records", &[&contract_label]).is_some());

    let portal = hub.metrics("portal").await;
    let produced = metric(
        &portal,
        "freeport_http_server_request_duration_seconds_count",
        &[
            "route=\"/topics/{topic}\"",
            "method=\"POST\"",
            "status=\"200\"",
        ],
    );
    assert_eq!(produced, Some(1.0), "{portal}");
    let refused = metric(
        &portal,
        "freeport_http_server_request_duration_seconds_count",
        &[
            "route=\"/v1/streams/{name}\"",
            "method=\"GET\"",
            "status=\"404\"",
        ],
    );
    assert_eq!(refused, Some(1.0), "{portal}");
    assert!(
        metric(
            &portal,
            "freeport_http_server_request_duration_seconds_bucket",
            &["route=\"/topics/{topic}\"", "le=\"+Inf\""]
        ) == Some(1.0),
        "{portal}"
    );

    let catalog = hub.metrics("catalog").await;
    assert_eq!(
        metric(
            &catalog,
            "freeport_catalog_contracts",
            &["state=\"active\""]
        ),
        Some(1.0),
        "{catalog}"
    );
    assert_eq!(
        metric(
            &catalog,
            "freeport_catalog_contracts",
            &["state=\"revoked\""]
        ),
        Some(0.0),
        "{catalog}"
    );
    assert!(
        metric(
            &catalog,
            "freeport_catalog_write_duration_seconds_count",
            &["operation=\"contract.approve\""]
        ) >= Some(1.0),
        "{catalog}"
    );
    assert!(
        metric(
            &catalog,
            "freeport_grpc_server_request_duration_seconds_count",
            &[
                "method=\"/freeport.catalog.v1.CatalogService/",
                "code=\"OK\""
            ]
        ) >= Some(1.0),
        "{catalog}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for text in [&catalog, &link, &portal] {
        let expiry = metric(
            text,
            "freeport_certificate_expiry_timestamp_seconds",
            &["certificate=\"service\""],
        )
        .expect("certificate expiry");
        assert!(expiry > now, "the development certificate is valid now");
        assert_eq!(
            metric(text, "freeport_check_up", &[]).map(|_| ()),
            Some(()),
            "every service reports its checks"
        );
    }

    // The dashboard and the alert rules use only what the services export.
    let exported = format!("{catalog}{link}{portal}");
    check_dashboard(&exported);
    check_alert_rules(&exported);

    // The partner's broker stops answering: the services that reach it are
    // no longer ready, unless a probe leaves that cluster out.
    let broker = orgs.partner_cluster.process.pid();
    signal(broker, "-STOP");
    for service in ["link", "portal"] {
        let body = until_readyz(&orgs, service, "", 503).await;
        assert_eq!(body["checks"]["cluster:globex"]["ok"], false, "{body}");
        assert!(
            body["checks"]["cluster:globex"]["error"].is_string(),
            "says why: {body}"
        );
        assert_eq!(body["checks"]["cluster:acme"]["ok"], true, "{body}");
        let (status, body) = readyz(&orgs, service, "?exclude=cluster:globex").await;
        assert_eq!(status, 200, "{service} without the globex check: {body}");
    }
    let portal = hub.metrics("portal").await;
    assert_eq!(
        metric(&portal, "freeport_check_up", &["check=\"cluster:globex\""]),
        Some(0.0),
        "{portal}"
    );
    signal(broker, "-CONT");
    for service in ["link", "portal"] {
        until_readyz(&orgs, service, "", 200).await;
    }

    // The catalog freezes: its clients notice.
    signal(hub.catalog.pid(), "-STOP");
    for service in ["link", "portal"] {
        let body = until_readyz(&orgs, service, "", 503).await;
        assert_eq!(body["checks"]["catalog"]["ok"], false, "{body}");
    }
    signal(hub.catalog.pid(), "-CONT");
    for service in SERVICES {
        until_readyz(&orgs, service, "", 200).await;
    }
}

/// The metric names (`freeport_…`) a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("freeport_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Whether Prometheus text has a sample of `name`.
fn exported(text: &str, name: &str) -> bool {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
}

fn check_exprs(what: &str, exprs: &[String], text: &str) {
    assert!(!exprs.is_empty(), "{what} has no expressions");
    for expr in exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{what}: {expr} names no Freeport metric");
        for name in names {
            assert!(
                exported(text, &name),
                "{what} uses {name}, which no service exports: {expr}"
            );
        }
    }
}

fn check_dashboard(text: &str) {
    let path = workspace().join("deploy/grafana/freeport.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    assert_eq!(dashboard["uid"], "freeport-overview");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "panel ids are unique"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    // The link panels show lag and throughput; the catalog's, contracts by state.
    for needed in [
        "freeport_link_lag_milliseconds",
        "freeport_link_lag_records",
        "freeport_link_records_total",
        "freeport_catalog_contracts",
        "freeport_catalog_write_duration_seconds_bucket",
        "freeport_http_server_request_duration_seconds_bucket",
        "freeport_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "the dashboard shows {needed}"
        );
    }
    check_exprs("the dashboard", &exprs, text);
}

fn check_alert_rules(text: &str) {
    let path = workspace().join("deploy/prometheus/alerts.yml");
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("alerts")).expect("YAML");
    let mut exprs = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            assert!(alerts.insert(name.to_string()), "{name} twice");
            assert!(rule["for"].as_str().is_some(), "{name} has a `for`");
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("warning" | "critical")
                ),
                "{name} has a severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name} has a summary"
            );
            exprs.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }
    // The three the issue names: link lag, link error state, certificate expiry.
    let all = exprs.join("\n");
    for needed in [
        "freeport_link_lag_milliseconds",
        "freeport_link_state{state=\"error\"}",
        "freeport_certificate_expiry_timestamp_seconds",
    ] {
        assert!(all.contains(needed), "an alert watches {needed}");
    }
    check_exprs("the alert rules", &exprs, text);
}
