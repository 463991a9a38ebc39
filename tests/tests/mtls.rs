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

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
