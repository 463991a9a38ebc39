//! The catalog speaks only mutual TLS: a client must present a certificate
//! from the hub's CA.

use std::sync::Arc;

use freeport_catalog::store::MemoryStore;
use freeport_catalog::Catalog;
use freeport_common::config::Clusters;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::tls::DevPki;
use pb::catalog_service_client::CatalogServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

async fn list_streams(addr: std::net::SocketAddr, tls: ClientTlsConfig) -> Result<usize, String> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    CatalogServiceClient::new(channel)
        .list_streams(pb::ListStreamsRequest { viewer: None })
        .await
        .map(|r| r.into_inner().streams.len())
        .map_err(|e| format!("call: {e}"))
}

async fn channel_for(
    addr: std::net::SocketAddr,
    tls: &freeport_common::tls::TlsMaterial,
) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls.client_config("catalog"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn only_clients_with_a_certificate_from_the_hub_ca_get_in_and_find_health_and_reflection() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let hub = DevPki::ensure(ours.path()).unwrap();
    let stranger = DevPki::ensure(theirs.path()).unwrap();

    let shutdown = CancellationToken::new();
    let catalog = Arc::new(Catalog::new(
        Arc::new(MemoryStore::default()),
        Clusters::new(),
        shutdown.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = hub.files_for("catalog").load().unwrap();
    let server = tokio::spawn(freeport_catalog::serve(
        catalog,
        listener,
        tls,
        shutdown.clone(),
    ));

    let link = hub.files_for("link").load().unwrap();
    assert_eq!(
        list_streams(addr, link.client_config("catalog")).await,
        Ok(0)
    );

    // Trusts our CA but presents no certificate.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&link.ca_pem))
        .domain_name("catalog");
    assert!(list_streams(addr, anonymous).await.is_err());

    // Presents a certificate from another CA.
    let mut foreign = stranger.files_for("link").load().unwrap();
    foreign.ca_pem = link.ca_pem.clone();
    assert!(list_streams(addr, foreign.client_config("catalog"))
        .await
        .is_err());

    // Standard gRPC health checking and server reflection, over the same mTLS.
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(link.client_config("catalog"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "freeport.catalog.v1.CatalogService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    use tonic_reflection::pb::v1 as reflection;
    let request = reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            reflection::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = reflection::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(reflection::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"freeport.catalog.v1.CatalogService"),
        "{names:?}"
    );

    // Watch over gRPC: a client that reconnects with the last revision it saw
    // misses nothing and sees nothing twice.
    let mut client = CatalogServiceClient::new(channel_for(addr, &link).await);
    let create = |name: &str| pb::CreateOrganizationRequest {
        actor: Some(pb::Principal {
            role: pb::Role::Admin.into(),
            organization: String::new(),
            key_id: "test".into(),
            ..Default::default()
        }),
        name: name.into(),
        kind: pb::OrganizationKind::Partner.into(),
        ..Default::default()
    };
    client.create_organization(create("first")).await.unwrap();
    let mut watch = client
        .watch(pb::WatchRequest { after_revision: 0 })
        .await
        .unwrap()
        .into_inner();
    let seen = watch.message().await.unwrap().unwrap();
    assert_eq!(seen.revision, 1);
    drop(watch);
    for name in ["second", "third"] {
        client.create_organization(create(name)).await.unwrap();
    }
    let mut resumed = client
        .watch(pb::WatchRequest {
            after_revision: seen.revision,
        })
        .await
        .unwrap()
        .into_inner();
    let mut names = vec![];
    for expected in [2, 3] {
        let event = resumed.message().await.unwrap().unwrap();
        assert_eq!(event.revision, expected);
        let Some(pb::watch_event::Change::Organization(org)) = event.change else {
            panic!("unexpected change {event:?}");
        };
        names.push(org.name);
    }
    assert_eq!(names, ["second", "third"]);
    client.create_organization(create("fourth")).await.unwrap();
    assert_eq!(
        resumed.message().await.unwrap().unwrap().revision,
        4,
        "live events follow"
    );

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// At the portal, a partner may show a client certificate instead of an API
/// key: the certificate's `urn:freeport:org:` URI names its organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_identifies_its_organization_at_the_portal() {
    use freeport_tests::{json, TwoOrgs, Value};

    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    let hub = &sandbox.hub;
    let pki = hub.pki();
    let globex = pki
        .issue_partner("globex", None)
        .expect("globex certificate");
    let client = hub.client_with_certificate(&globex.cert, &globex.key);

    // Acting as globex: request a contract, then see it as globex's.
    let response = client
        .post(format!("{}/v1/contracts", hub.url))
        .json(&json!({
            "stream": "orders", "purpose": "by certificate",
            "destination": {"cluster": "globex", "topic": "orders-copy"},
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let contract: Value = response.json().await.unwrap();
    assert_eq!(contract["consumer"], "globex", "{contract}");
    let listed: Value = client
        .get(format!("{}/v1/contracts", hub.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["contracts"][0]["id"], contract["id"]);

    // An API key still wins when both are shown.
    let as_owner: Value = client
        .get(format!("{}/v1/contracts?org=globex", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_owner["contracts"].as_array().unwrap().len(), 1);

    // Refused: a certificate of an organization that does not exist, a
    // service's certificate (it names no organization), and none at all.
    let initech = pki
        .issue_partner("initech", None)
        .expect("initech certificate");
    let link = pki.files_for("link");
    for (client, why) in [
        (
            hub.client_with_certificate(&initech.cert, &initech.key),
            "does not exist",
        ),
        (
            hub.client_with_certificate(&link.cert, &link.key),
            "names no organization",
        ),
        (hub.http.clone(), "client certificate"),
    ] {
        let response = client
            .get(format!("{}/v1/contracts", hub.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{why}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], 40101, "{body}");
        assert!(body["message"].as_str().unwrap().contains(why), "{body}");
    }

    // A certificate without the URI identifies the organization that
    // registered its fingerprint.
    let link_der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(&link.cert).unwrap()
    };
    let fingerprint = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&link_der))
    };
    let (status, created) = hub
        .call(
            "POST",
            "/v1/orgs",
            &hub.admin_key,
            Some(json!({"name": "umbrella", "kind": "partner", "trusted_cert_fingerprints": [fingerprint]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let response = hub
        .client_with_certificate(&link.cert, &link.key)
        .get(format!("{}/v1/contracts", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "pinned by fingerprint");

    // A certificate from another CA does not get through TLS.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = DevPki::ensure(stranger_dir.path())
        .unwrap()
        .issue_partner("globex", None)
        .unwrap();
    let refused = hub
        .client_with_certificate(&stranger.cert, &stranger.key)
        .get(format!("{}/v1/contracts", hub.url))
        .send()
        .await;
    assert!(refused.is_err(), "a stranger's certificate was accepted");
}
