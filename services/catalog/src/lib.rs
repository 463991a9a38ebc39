//! Freeport's catalog: the source of truth for organizations, streams,
//! contracts and credentials.
//!
//! - [`domain`]: the types and the contract state machine, free of I/O.
//! - [`asyncapi`]: publishing AsyncAPI 3.0 documents: validation and the
//!   streams they describe.
//! - [`audit`]: the hash-chained audit log, written in the same commit as
//!   every change it records.
//! - [`schema`]: schema versions (JSON Schema, Avro) and their compatibility.
//! - [`store`]: storage behind a trait, sled or in memory.
//! - [`service`]: the operations and their rules, a file per area
//!   (organizations, keys, streams, schemas, AsyncAPI publishing, contracts,
//!   expiry, links, Watch); every write goes through one lock and one atomic
//!   commit, and is broadcast to Watch subscribers.
//! - [`links`]: which link process mirrors which contract (leases).
//! - [`grpc`]: the tonic adapter, served over mutual TLS by [`serve`].
//! - [`metrics`]: write latency and contract counts; with the per-method
//!   gRPC metrics and readiness, served on `ops_listen`.

pub mod asyncapi;
pub mod audit;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod links;
pub mod metrics;
pub mod service;
pub mod store;

use std::sync::Arc;

use freeport_common::config::Clusters;
use freeport_common::ops::Ops;
use freeport_common::tls::TlsMaterial;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

pub use config::CatalogConfig;
pub use error::CatalogError;
pub use service::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] freeport_common::tls::TlsError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    AsyncApiSchema(String),
    #[error(transparent)]
    Policies(#[from] freeport_common::authz::PolicyError),
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(String),
    #[error(transparent)]
    Metrics(#[from] freeport_common::metrics::MetricsError),
    #[error(transparent)]
    Ops(#[from] freeport_common::ops::OpsError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Opens the store the config names and builds the catalog.
pub fn open(
    config: &CatalogConfig,
    clusters: Clusters,
    shutdown: CancellationToken,
) -> Result<Arc<Catalog>, StartError> {
    build(config, clusters, shutdown).map(Arc::new)
}

/// [`open`], for a caller that adjusts the catalog before sharing it.
pub fn build(
    config: &CatalogConfig,
    clusters: Clusters,
    shutdown: CancellationToken,
) -> Result<Catalog, StartError> {
    let store = store::open(&config.store)?;
    let mut catalog = Catalog::new(store, clusters, shutdown);
    catalog.set_link_lease(
        std::time::Duration::from_secs(config.link_lease_secs.max(2)),
        false,
    );
    catalog.set_policies(freeport_common::authz::Authorizer::load(
        config.policies.as_deref(),
    )?);
    if let Some(path) = &config.asyncapi_schema {
        catalog.set_asyncapi_validator(
            asyncapi::AsyncApiValidator::load(path).map_err(StartError::AsyncApiSchema)?,
        );
    }
    Ok(catalog)
}

/// Runs the catalog from its config until `shutdown` fires.
pub async fn run(
    config: CatalogConfig,
    clusters: Clusters,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let tls = config.tls.load()?;
    let mut catalog = build(&config, clusters, shutdown.clone())?;
    let ops = match config.ops_listen {
        Some(addr) => {
            let metrics = Arc::new(freeport_common::metrics::Metrics::new("freeport-catalog")?);
            catalog.set_metrics(&metrics.meter());
            Some((addr, metrics))
        }
        None => None,
    };
    let catalog = Arc::new(catalog);
    // A store from before clusters had owners may hold what the rules now
    // refuse: say so at every start, change nothing.
    match catalog.ownership_problems() {
        Ok(report) => {
            for (entity, problem) in &report.problems {
                tracing::warn!(%entity, "breaks the ownership rules: {problem}; see `freeport catalog check-ownership`");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot check ownership"),
    }
    // A store from before global schema ids gets them, once.
    match catalog.number_unnumbered_schemas().await {
        Ok(0) => {}
        Ok(streams) => tracing::info!(streams, "gave schema versions their global ids"),
        Err(e) => tracing::error!(error = %e, "cannot number schema versions"),
    }
    if let Some((addr, metrics)) = ops {
        // The catalog talks to no cluster: its readiness is its store.
        let ops = Ops::for_service(metrics, &tls, None, &Clusters::new(), &shutdown);
        let store = catalog.clone();
        ops.readiness.probe("store", shutdown.clone(), move || {
            let outcome = store.store_readable();
            async move { outcome }
        });
        freeport_common::ops::start(
            addr,
            Some(&tls),
            &config.ops_connections,
            ops,
            shutdown.clone(),
        )?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    serve(catalog, listener, tls, shutdown).await
}

/// Serves the catalog's gRPC API on `listener` over mutual TLS.
pub async fn serve(
    catalog: Arc<Catalog>,
    listener: TcpListener,
    tls: TlsMaterial,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "catalog listening (gRPC, mutual TLS)");
    }
    tokio::spawn(catalog.clone().run_expiry());
    let key_use = tokio::spawn(catalog.clone().run_key_use_flush());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(
            freeport_common::ops::CATALOG_SERVICE,
            ServingStatus::Serving,
        )
        .await;
    // Draining: callers' health checks see NOT_SERVING while open calls finish.
    let draining = shutdown.clone();
    tokio::spawn(async move {
        draining.cancelled().await;
        health
            .set_service_status(
                freeport_common::ops::CATALOG_SERVICE,
                ServingStatus::NotServing,
            )
            .await;
    });
    let grpc_metrics = freeport_common::metrics::GrpcTelemetryLayer::new(catalog.meter());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(freeport_common::proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    tonic::transport::Server::builder()
        .tls_config(tls.server_config())?
        .layer(grpc_metrics)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(grpc::CatalogGrpc::new(catalog).into_server())
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await?;
    // The last use of each key since the last flush.
    let _ = key_use.await;
    Ok(())
}

/// The listener's connections, with `TCP_NODELAY`. tonic sets it only on
/// listeners it binds itself; without it, an answer written in more than
/// one piece waits for the caller's delayed ACK (about 40 ms on Linux) on
/// every call.
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
