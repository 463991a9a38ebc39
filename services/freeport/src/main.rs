//! The `freeport` command. Parses arguments, loads configuration and hands
//! over to a service's `run`; `up` runs all three in one process.

mod config;
mod topic;
mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use freeport_common::config::Clusters;
use freeport_common::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

use crate::config::{FileConfig, Scope};

#[derive(Parser)]
#[command(
    name = "freeport",
    version,
    about = "Freeport: a streaming data-exchange hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the catalog service (gRPC over mutual TLS), or a catalog tool.
    Catalog {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<CatalogAction>,
    },
    /// Run the link service (the replicator).
    Link(ConfigArg),
    /// Run the portal service (REST, AsyncAPI, REST Proxy data plane).
    Portal(ConfigArg),
    /// Run all three services in one process for development, on embedded defaults.
    Up(up::UpArgs),
    /// Create the catalog's first admin API key and print it (once).
    BootstrapAdmin(ConfigArg),
    /// Certificate tooling.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Kafka topic tools.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The configuration file (TOML); `FREEPORT_<SECTION>__<KEY>` environment
    /// variables override it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CatalogAction {
    /// Check the hash chain of the audit log; names the first broken entry
    /// and exits non-zero if there is one. Reads the store directly when the
    /// catalog is stopped, and asks the running catalog otherwise.
    VerifyAudit,
    /// Report the streams whose owner does not own their cluster (or whose
    /// topic is reserved for the hub) and the live contracts that deliver
    /// into a cluster their consumer does not own: written before clusters
    /// had owners. Changes nothing; exits non-zero when it finds any. Reads
    /// the store directly when the catalog is stopped, and asks the running
    /// catalog otherwise.
    CheckOwnership,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development CA and a certificate for each service in DIR
    /// (kept if they exist).
    Dev {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Create a CA in DIR (`ca.pem`, `ca.key`), unless one is there. Keep
    /// `ca.key` off the hosts that run the services.
    Ca {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue (or renew) the certificate of service NAME, signed by the CA
    /// in DIR: `NAME.pem` and `NAME.key`, for server and client use. It
    /// names NAME (the services reach the catalog as `catalog`) and every
    /// --host. Prometheus gets one too, to scrape /metrics.
    Service {
        name: String,
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address clients use to reach the service; repeatable.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issue a client certificate for partner organization ORG, signed by
    /// the CA in DIR: `org-ORG.pem` and `org-ORG.key`. A portal whose
    /// `client_ca` is that CA takes a caller showing it for ORG.
    #[command(alias = "org")]
    Partner {
        org: String,
        #[arg(long)]
        dir: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Write `crl.pem` in DIR: a certificate revocation list signed by the
    /// CA there, listing every CERT (PEM files it issued; none for an empty
    /// list). A portal whose `client_crl` is that file refuses them within
    /// about a second. List every certificate still revoked each time: the
    /// file is replaced.
    Revoke {
        certs: Vec<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
        /// Days until the list should be issued again.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check FILE (with the FREEPORT_ environment overrides) and report
    /// every problem at once; exits non-zero when there is one.
    Check { file: PathBuf },
    /// Print the configuration reference (docs/configuration.md).
    Docs,
    /// Print the JSON Schema of the configuration file.
    Schema,
}

impl FileConfig {
    fn from_arg(arg: &ConfigArg, scope: Scope) -> anyhow::Result<FileConfig> {
        Ok(FileConfig::load(
            arg.config.as_deref(),
            &freeport_common::config::process_env(),
            scope,
        )?)
    }
}

fn section<T>(value: Option<T>, name: &str) -> anyhow::Result<T> {
    value.with_context(|| format!("the configuration has no [{name}] section"))
}

/// Answers a catalog tool's question from the store when the catalog is
/// stopped (`offline`), or else from the running catalog, which holds the
/// store's lock (`online`).
async fn ask_catalog<T, F>(
    config: &freeport_catalog::CatalogConfig,
    clusters: Clusters,
    offline: impl FnOnce(&freeport_catalog::Catalog) -> anyhow::Result<T>,
    online: impl FnOnce(CatalogClient) -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match freeport_catalog::open(config, clusters, CancellationToken::new()) {
        Ok(catalog) => offline(&catalog),
        Err(closed) => {
            let tls = config.tls.load()?;
            let url = format!("https://{}", config.listen);
            let channel = freeport_common::tls::catalog_channel(&url, &tls)?;
            let answer = online(CatalogClient::new(channel)).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the store ({closed}) nor ask the catalog at {url} ({})",
                    e.message()
                )
            })?;
            Ok(answer.into_inner())
        }
    }
}

type CatalogClient =
    freeport_common::proto::catalog::v1::catalog_service_client::CatalogServiceClient<
        tonic::transport::Channel,
    >;

async fn check_ownership(
    config: &freeport_catalog::CatalogConfig,
    clusters: Clusters,
) -> anyhow::Result<()> {
    use freeport_common::proto::catalog::v1 as pb;
    let answer = ask_catalog(
        config,
        clusters,
        |catalog| {
            Ok(freeport_catalog::grpc::ownership_pb(
                catalog.ownership_problems()?,
            ))
        },
        |mut client| async move { client.check_ownership(pb::CheckOwnershipRequest {}).await },
    )
    .await?;
    for problem in &answer.problems {
        println!("{}: {}", problem.entity, problem.problem);
    }
    if answer.problems.is_empty() {
        println!(
            "ownership holds: {} streams and {} contracts checked",
            answer.streams, answer.contracts
        );
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} streams and {} contracts break the ownership rules; nothing was changed",
            answer.problems.len(),
            answer.streams,
            answer.contracts
        )
    }
}

async fn verify_audit(
    config: &freeport_catalog::CatalogConfig,
    clusters: Clusters,
) -> anyhow::Result<()> {
    use freeport_common::proto::catalog::v1 as pb;
    let answer = ask_catalog(
        config,
        clusters,
        |catalog| {
            Ok(freeport_catalog::grpc::verification_pb(
                catalog.verify_audit()?,
            ))
        },
        |mut client| async move { client.verify_audit(pb::VerifyAuditRequest {}).await },
    )
    .await?;
    if answer.intact {
        println!("audit chain intact: {} entries", answer.entries);
        Ok(())
    } else {
        anyhow::bail!(
            "audit chain broken at entry {}: {} ({} entries before it are intact)",
            answer.first_broken,
            answer.reason,
            answer.entries
        )
    }
}

/// The CA in `dir`, which must exist (`freeport certs ca` creates one).
fn ca_in(dir: &std::path::Path) -> anyhow::Result<freeport_common::tls::DevPki> {
    let ca = dir.join("ca.pem");
    anyhow::ensure!(
        ca.exists() && dir.join("ca.key").exists(),
        "no CA in {} (create one with `freeport certs ca --dir {}`)",
        dir.display(),
        dir.display()
    );
    Ok(freeport_common::tls::DevPki::ensure_ca(dir)?)
}

fn print_issued(what: &str, files: &freeport_common::tls::TlsFiles, days: u32) {
    println!("{what}, valid for {days} days:");
    println!("  certificate: {}", files.cert.display());
    println!("  key:         {}", files.key.display());
    println!("  CA:          {}", files.ca.display());
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Fires on Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                let _ = tokio::signal::ctrl_c().await;
                fire.cancel();
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        fire.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freeport: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    freeport_common::telemetry::init();
    // One process-wide TLS provider for every rustls user (tonic, HTTPS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Catalog {
            config: arg,
            action: None,
        } => {
            let config = FileConfig::from_arg(&arg, Scope::Catalog)?;
            let catalog = section(config.catalog, "catalog")?;
            let run = freeport_catalog::run(catalog, config.clusters, shutdown_on_signal());
            Telemetry::around(config.telemetry.as_ref(), "freeport-catalog", run).await??;
        }
        Command::Catalog {
            config: arg,
            action: Some(CatalogAction::VerifyAudit),
        } => {
            let config = FileConfig::from_arg(&arg, Scope::Catalog)?;
            let catalog = section(config.catalog, "catalog")?;
            verify_audit(&catalog, config.clusters).await?;
        }
        Command::Catalog {
            config: arg,
            action: Some(CatalogAction::CheckOwnership),
        } => {
            let config = FileConfig::from_arg(&arg, Scope::Catalog)?;
            let catalog = section(config.catalog, "catalog")?;
            check_ownership(&catalog, config.clusters).await?;
        }
        Command::Link(arg) => {
            let config = FileConfig::from_arg(&arg, Scope::Link)?;
            let link = section(config.link, "link")?;
            let run = freeport_link::run(link, config.clusters, shutdown_on_signal());
            Telemetry::around(config.telemetry.as_ref(), "freeport-link", run).await??;
        }
        Command::Portal(arg) => {
            let config = FileConfig::from_arg(&arg, Scope::Portal)?;
            let portal = section(config.portal, "portal")?;
            let run = freeport_portal::run(portal, config.clusters, shutdown_on_signal());
            Telemetry::around(config.telemetry.as_ref(), "freeport-portal", run).await??;
        }
        Command::Up(args) => up::run(args, shutdown_on_signal()).await?,
        Command::BootstrapAdmin(arg) => {
            let config = FileConfig::from_arg(&arg, Scope::Catalog)?;
            let catalog_config = section(config.catalog, "catalog")?;
            let catalog =
                freeport_catalog::open(&catalog_config, config.clusters, CancellationToken::new())?;
            match catalog.bootstrap_admin_key().await? {
                Some((key_id, api_key)) => {
                    println!(
                        "{}",
                        serde_json::json!({"key_id": key_id, "api_key": api_key})
                    );
                }
                None => anyhow::bail!(
                    "the catalog has an admin key already; ask an admin for a new one"
                ),
            }
        }
        Command::Certs {
            command: CertsCommand::Dev { dir },
        } => {
            let pki = freeport_common::tls::DevPki::ensure(&dir)?;
            println!(
                "development CA and service certificates in {}",
                dir.display()
            );
            println!("  CA: {}", pki.ca_path().display());
        }
        Command::Certs {
            command: CertsCommand::Ca { dir },
        } => {
            let pki = freeport_common::tls::DevPki::ensure_ca(&dir)?;
            println!("CA: {}", pki.ca_path().display());
        }
        Command::Certs {
            command:
                CertsCommand::Service {
                    name,
                    dir,
                    hosts,
                    days,
                },
        } => {
            let name = freeport_common::names::OrgName::parse(name)
                .context("a service certificate's name")?;
            let files = ca_in(&dir)?.issue_service(name.as_str(), &hosts, Some(days))?;
            print_issued(&format!("certificate of service {name}"), &files, days);
        }
        Command::Certs {
            command: CertsCommand::Partner { org, dir, days },
        } => {
            let org = freeport_common::names::OrgName::parse(org)?;
            let files = ca_in(&dir)?.issue_partner(org.as_str(), Some(days))?;
            print_issued(
                &format!("client certificate of organization {org}"),
                &files,
                days,
            );
        }
        Command::Certs {
            command: CertsCommand::Revoke { certs, dir, days },
        } => {
            let path = ca_in(&dir)?.revoke(&certs, days)?;
            println!(
                "{} revoking {} certificate(s), valid for {days} days",
                path.display(),
                certs.len()
            );
        }
        Command::Topic { command } => topic::run(command).await?,
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let checked = FileConfig::load(
                Some(&file),
                &freeport_common::config::process_env(),
                Scope::All,
            )
            .with_context(|| format!("{} has problems", file.display()))?;
            println!(
                "{}: ok (sections: {}; clusters: {})",
                file.display(),
                checked.sections().join(", "),
                checked
                    .clusters
                    .keys()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::Config {
            command: ConfigCommand::Docs,
        } => print_out(&config::reference()),
        Command::Config {
            command: ConfigCommand::Schema,
        } => print_out(&format!("{:#}\n", config::schema())),
    }
    Ok(())
}
