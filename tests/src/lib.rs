//! The sandbox for end-to-end tests: real tansu brokers, real `freeport`
//! processes on free ports with a temporary data folder, and an HTTPS client
//! that trusts the sandbox's CA. Quiet unless `TEST_LOG` is set, in which
//! case every child's output goes to the test's stderr.
//!
//! `tests/run.sh` builds the `freeport` binary and installs tansu before the
//! tests run; `FREEPORT_BIN` and `TANSU_BIN` override where they are found.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::tls::{DevPki, TlsFiles};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

pub use reqwest;
pub use serde_json::{json, Value};

pub mod bench;
pub mod browser;
pub mod otlp;
pub mod tls_front;
use tls_front::TlsFront;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub(crate) fn find_binary(env: &str, candidates: &[PathBuf], hint: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        // Relative to the workspace, as the documented commands are typed
        // there (cargo runs tests and benches from the crate's folder).
        return workspace().join(path);
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("cannot find {env}: {hint}"))
}

/// The `freeport` binary under test.
pub fn freeport_bin() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    find_binary(
        "FREEPORT_BIN",
        &[target.join("debug/freeport")],
        "run `cargo build -p freeport` first (tests/run.sh does)",
    )
}

/// The Python interpreter with the ecosystem's clients (confluent-kafka
/// and its Schema Registry serializers) that tests/run.sh installs.
pub fn clients_python() -> PathBuf {
    find_binary(
        "FREEPORT_CLIENTS_PYTHON",
        &[workspace().join("target/test-deps/clients/bin/python")],
        "install confluent-kafka with tests/run.sh",
    )
}

/// The `node_modules` with Confluent's REST Proxy client for Node.js
/// (kafka-rest) that tests/run.sh installs.
pub fn rest_client_modules() -> PathBuf {
    let path = std::env::var("FREEPORT_REST_CLIENT_MODULES").map_or_else(
        |_| workspace().join("target/test-deps/rest-client/node_modules"),
        |p| workspace().join(p),
    );
    assert!(
        path.join("kafka-rest").is_dir(),
        "cannot find kafka-rest in {}: install it with tests/run.sh",
        path.display()
    );
    path
}

/// The tansu broker binary.
pub fn tansu_bin() -> PathBuf {
    let mut candidates = vec![];
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join("tansu")));
    }
    find_binary("TANSU_BIN", &candidates, "install it with tests/run.sh")
}

/// A port nothing listens on right now and that this process has not
/// handed out before, for a process the test is about to start.
///
/// Not the kernel's choice (binding port 0): that can return a port it
/// returned a moment ago (about once in a thousand here), so two services
/// of one hub were told to listen on the same port and the hub never came
/// up. The port is taken below the kernel's ephemeral range, too, so no
/// outbound connection of a test running alongside can take it before the
/// process meant for it binds it. Each test process starts at its own place
/// in the range, which keeps test processes run side by side apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Ports at or above this are the kernel's to give to outbound connections.
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&low| low > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral - LOWEST;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOWEST} and {ephemeral}")
}

/// Retries `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Process {
        let log = log_dir.join(format!("{name}.log"));
        if std::env::var_os("TEST_LOG").is_some() {
            command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            // Appends: a process started again (after a kill) keeps the
            // earlier runs' lines in the same file.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log file");
            let err = file.try_clone().expect("log file");
            command.stdout(file).stderr(err);
        }
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stops a service: it shuts down gracefully.
    pub fn terminate(&self) {
        signal(self.pid(), "-TERM");
    }

    /// Waits (up to `timeout`) for the process to exit; its status.
    pub async fn exited(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("{} exited with {status}:\n{log}", self.name);
        }
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Whether the process still runs, and the last lines of its log.
    pub fn report(&mut self) -> String {
        const LINES: usize = 40;
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited with {status}"),
            Ok(None) => "running".to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
        format!(
            "--- {} (pid {}), {state}; last lines of {}:\n{tail}",
            self.name,
            self.pid(),
            self.log.display()
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// A tansu broker on a free port with in-memory storage.
pub struct Broker {
    pub process: Process,
    pub bootstrap: String,
    /// For a broker behind a [`TlsFront`]: the files a client uses.
    pub tls: Option<TlsFiles>,
    /// The TLS front, when clients reach the broker through one.
    pub front: Option<TlsFront>,
}

impl Broker {
    pub async fn start(name: &str, dir: &Path) -> Broker {
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        Broker::launch(name, dir, port, bootstrap, None, None).await
    }

    /// A broker that clients reach only through a [`TlsFront`] requiring a
    /// client certificate signed by `pki`'s CA. The front presents `pki`'s
    /// `catalog` certificate (valid for `localhost`); clients get `pki`'s
    /// `link` identity in [`Broker::cluster`].
    pub async fn start_behind_tls(name: &str, dir: &Path, pki: &DevPki) -> Broker {
        let port = free_port();
        let front_port = free_port();
        let server = pki.files_for("catalog");
        let front = TlsFront::start(
            front_port,
            format!("127.0.0.1:{port}"),
            &server.ca,
            &server.cert,
            &server.key,
        )
        .await;
        let bootstrap = format!("localhost:{front_port}");
        let tls = Some(pki.files_for("link"));
        Broker::launch(name, dir, port, bootstrap, tls, Some(front)).await
    }

    /// Runs tansu on `port`, telling clients to come back through `bootstrap`.
    async fn launch(
        name: &str,
        dir: &Path,
        port: u16,
        bootstrap: String,
        tls: Option<TlsFiles>,
        front: Option<TlsFront>,
    ) -> Broker {
        let listen = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://{bootstrap}");
        let process = Process::spawn(
            name,
            Command::new(tansu_bin())
                .args([
                    "broker",
                    "--listener-url",
                    &listen,
                    "--advertised-listener-url",
                    &advertised,
                    "--storage-engine",
                    "memory://tansu/",
                ])
                // Warnings name the Kafka error behind each refused request.
                .env("RUST_LOG", "warn"),
            dir,
        );
        let broker = Broker {
            process,
            bootstrap,
            tls,
            front,
        };
        let cluster = broker.cluster();
        eventually(Duration::from_secs(20), "the broker to answer", || {
            let cluster = cluster.clone();
            async move {
                freeport_common::kafka::partition_count(&cluster, "probe")
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        broker
    }

    pub fn cluster(&self) -> ClusterConfig {
        ClusterConfig {
            tls: self.tls.clone(),
            ..ClusterConfig::plaintext(self.bootstrap.clone())
        }
    }
}

/// A record as read back from a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// How long a fresh consumer may take to deliver the first record of a
/// partition that holds data.
const FIRST_RECORD_GRACE: Duration = Duration::from_secs(15);

/// Every record of `topic` from the beginning, read until nothing new has
/// arrived for `idle` (counted once every partition that holds data has
/// delivered something). Ordered by partition, then offset.
pub async fn read_topic(bootstrap: &str, topic: &str, idle: Duration) -> Vec<Record> {
    read_cluster_topic(&ClusterConfig::plaintext(bootstrap), topic, idle).await
}

/// [`read_topic`] on a cluster that may need TLS.
pub async fn read_cluster_topic(
    cluster: &ClusterConfig,
    topic: &str,
    idle: Duration,
) -> Vec<Record> {
    let cluster = cluster.clone();
    let Some(partitions) = freeport_common::kafka::partition_count(&cluster, topic)
        .await
        .expect("metadata")
    else {
        return vec![];
    };
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            freeport_common::kafka::client_config(&cluster, "freeport-tests")
                .set("group.id", "freeport-tests")
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "50")
                .create()
                .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        let mut unread = std::collections::HashSet::new();
        for p in 0..partitions as i32 {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks");
            if high > low {
                unread.insert(p);
            }
            assignment
                .add_partition_offset(&topic, p, Offset::Beginning)
                .expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = vec![];
        let started = Instant::now();
        let mut last = Instant::now();
        while !unread.is_empty() || last.elapsed() < idle {
            assert!(
                unread.is_empty() || started.elapsed() < FIRST_RECORD_GRACE,
                "partitions {unread:?} of {topic} hold data but delivered none"
            );
            let Some(message) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let message = message.expect("consume");
            last = Instant::now();
            unread.remove(&message.partition());
            records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    })
    .await
    .expect("reader")
}

/// The three services as separate `freeport` processes, configured for
/// the given clusters, with a development PKI and an admin key.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub catalog: Process,
    pub link: Process,
    pub portal: Process,
    pub url: String,
    pub http: reqwest::Client,
    /// The catalog's gRPC address (mutual TLS; [`Hub::pki`] issues clients).
    pub catalog_url: String,
    pub admin_key: String,
    /// Each service's operations port (`/livez`, `/readyz`, `/metrics`).
    pub ops_ports: std::collections::BTreeMap<&'static str, u16>,
    /// A client with a certificate the operations listeners accept.
    metrics_http: reqwest::Client,
    config: PathBuf,
    /// The CA that signed the portal's certificate.
    ca_pem: Vec<u8>,
}

/// A further process of a hub's service ([`Hub::spawn_another`]).
pub struct Another {
    pub process: Process,
    /// A portal's listener port.
    pub listen: u16,
}

/// A WebSocket to the portal, over TLS.
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl Hub {
    /// A hub on these clusters, each owned by the organization of its name
    /// (which the test creates when it needs it).
    pub async fn start(clusters: &[(&str, &str)]) -> Hub {
        let clusters: Vec<_> = clusters
            .iter()
            .map(|(name, bootstrap)| (*name, ClusterConfig::plaintext(*bootstrap)))
            .collect();
        Hub::start_with(&clusters).await
    }

    /// [`Hub::start`] with clusters that may need TLS.
    pub async fn start_with(clusters: &[(&str, ClusterConfig)]) -> Hub {
        Hub::start_configured(clusters, "", "").await
    }

    /// [`Hub::start_with`], with `portal_extra` added to the `[portal]`
    /// section of the config (`key = value` lines) and `sections` (whole
    /// tables, `[telemetry]` say) at its end.
    pub async fn start_configured(
        clusters: &[(&str, ClusterConfig)],
        portal_extra: &str,
        sections: &str,
    ) -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        let pki = DevPki::ensure(&certs).expect("dev PKI");
        let catalog_port = free_port();
        let portal_port = free_port();
        let ops_ports: std::collections::BTreeMap<&'static str, u16> =
            ["catalog", "link", "portal"]
                .into_iter()
                .map(|service| (service, free_port()))
                .collect();
        let tls_table = |files: &TlsFiles| {
            format!(
                "tls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
                files.ca, files.cert, files.key
            )
        };
        let mut config = String::new();
        for (name, cluster) in clusters {
            // A cluster of the sandbox belongs to the organization of its
            // name unless it says otherwise.
            let owner = cluster
                .owner
                .as_ref()
                .map_or_else(|| name.to_string(), ToString::to_string);
            config.push_str(&format!(
                "[clusters.{name}]\nowner = \"{owner}\"\nbootstrap = \"{}\"\n",
                cluster.bootstrap
            ));
            if let Some(files) = &cluster.tls {
                config.push_str(&tls_table(files));
            }
            config.push('\n');
        }
        let tls = |service: &str| tls_table(&pki.files_for(service));
        config.push_str(&format!(
            "[catalog]\nlisten = \"127.0.0.1:{catalog_port}\"\nstore = \"sled://{}\"\nasyncapi_schema = {:?}\nops_listen = \"127.0.0.1:{}\"\nlink_lease_secs = 3\n{}\n",
            dir.path().join("catalog-db").display(),
            asyncapi_schema_path(),
            ops_ports["catalog"],
            tls("catalog")
        ));
        config.push_str(&format!(
            "[link]\ncatalog_url = \"https://127.0.0.1:{catalog_port}\"\nhash_key = \"sandbox-hash-key-of-at-least-32-characters\"\nops_listen = \"127.0.0.1:{}\"\n{}\n",
            ops_ports["link"],
            tls("link")
        ));
        config.push_str(&format!(
            "[portal]\nlisten = \"127.0.0.1:{portal_port}\"\ncatalog_url = \"https://127.0.0.1:{catalog_port}\"\nmax_body_bytes = 65536\nconsumer_idle_secs = 4\nrequest_timeout_secs = 8\nclient_ca = {:?}\nops_listen = \"127.0.0.1:{}\"\n{portal_extra}{}\n",
            pki.ca_path(),
            ops_ports["portal"],
            tls("portal")
        ));
        config.push_str(sections);
        let config_path = dir.path().join("freeport.toml");
        std::fs::write(&config_path, config).expect("write config");

        let output = Command::new(freeport_bin())
            .args(["bootstrap-admin", "--config"])
            .arg(&config_path)
            .output()
            .expect("bootstrap-admin");
        assert!(
            output.status.success(),
            "bootstrap-admin: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value =
            serde_json::from_slice(&output.stdout).expect("bootstrap-admin prints JSON");
        let admin_key = created["api_key"].as_str().expect("api_key").to_string();

        let service = |name: &str| {
            Process::spawn(
                name,
                Command::new(freeport_bin())
                    .args([name, "--config"])
                    .arg(&config_path),
                dir.path(),
            )
        };
        let catalog = service("catalog");
        let link = service("link");
        let portal = service("portal");

        let ca = std::fs::read(pki.ca_path()).expect("CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let url = format!("https://localhost:{portal_port}");
        let scraper = pki.files_for("portal");
        let mut identity = std::fs::read(&scraper.cert).expect("scraper certificate");
        identity.extend(std::fs::read(&scraper.key).expect("scraper key"));
        let metrics_http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
            .identity(reqwest::Identity::from_pem(&identity).expect("scraper identity"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("metrics client");
        let mut hub = Hub {
            catalog_url: format!("https://127.0.0.1:{catalog_port}"),
            dir,
            catalog,
            link,
            portal,
            url,
            http,
            admin_key,
            ops_ports,
            metrics_http,
            config: config_path,
            ca_pem: ca,
        };
        // Ready when an authenticated call goes through the portal to the catalog.
        let orgs = format!("{}/v1/orgs", hub.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = match hub.http.get(&orgs).bearer_auth(&hub.admin_key).send().await {
                Ok(answer) if answer.status().is_success() => break,
                Ok(answer) => format!(
                    "{}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                ),
                Err(e) => format!("{e:?}"),
            };
            let exited = [&mut hub.catalog, &mut hub.link, &mut hub.portal]
                .into_iter()
                .any(|process| process.has_exited());
            if exited || Instant::now() >= deadline {
                panic!(
                    "the hub did not come up (a service exited, or 30 s passed); \
                     the last probe of {orgs} saw {seen}\n{}",
                    hub.processes_report()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hub.catalog.assert_running();
        hub.link.assert_running();
        hub
    }

    /// Each service's state and the end of its log, for a failure message.
    pub fn processes_report(&mut self) -> String {
        [&mut self.catalog, &mut self.link, &mut self.portal]
            .into_iter()
            .map(Process::report)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The development PKI of this hub (its CA signs organizations' client
    /// certificates too).
    pub fn pki(&self) -> DevPki {
        DevPki::ensure(&self.dir.path().join("certs")).expect("dev PKI")
    }

    /// An HTTPS client to the portal showing the client certificate in
    /// `cert` and `key` (PEM files) instead of an API key.
    pub fn client_with_certificate(&self, cert: &Path, key: &Path) -> reqwest::Client {
        let mut identity = std::fs::read(cert).expect("client certificate");
        identity.extend(std::fs::read(key).expect("client key"));
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem).expect("CA pem"))
            .identity(reqwest::Identity::from_pem(&identity).expect("client identity"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Opens a WebSocket to the portal's `path_and_query` with the API key
    /// `key` and the extra `headers`; a refused upgrade is
    /// `tungstenite::Error::Http` with the portal's answer.
    pub async fn websocket(
        &self,
        path_and_query: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> Result<WebSocket, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;

        let authority = self.url.trim_start_matches("https://");
        let tls = self.tls_to(authority).await.expect("TLS to the portal");
        let mut request = format!("wss://{authority}{path_and_query}").into_client_request()?;
        let mut add = |name: &str, value: &str| {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        };
        add("authorization", &format!("Bearer {key}"));
        for (name, value) in headers {
            add(name, value);
        }
        let (socket, _) = tokio_tungstenite::client_async(request, tls).await?;
        Ok(socket)
    }

    /// A TLS connection to `localhost:PORT` (the portal, an operations
    /// listener), trusting the hub's CA and showing no certificate.
    pub async fn tls_to(
        &self,
        authority: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;

        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls::pki_types::CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots.add(ca.expect("CA pem")).expect("trust the CA");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp =
            tokio::net::TcpStream::connect(authority.replace("localhost", "127.0.0.1")).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").expect("server name"),
                tcp,
            )
            .await
    }

    /// `https://localhost:PORT/PATH` on `service`'s operations listener.
    pub fn ops_url(&self, service: &str, path: &str) -> String {
        format!("https://localhost:{}{path}", self.ops_ports[service])
    }

    /// GET `path` on `service`'s operations listener, showing a client
    /// certificate signed by the hub's CA or (`certified` false) none.
    pub async fn ops_get(&self, service: &str, path: &str, certified: bool) -> reqwest::Response {
        let client = if certified {
            &self.metrics_http
        } else {
            &self.http
        };
        client
            .get(self.ops_url(service, path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the {service}'s operations listener: {e}"))
    }

    /// `service`'s metrics, as Prometheus scrapes them.
    pub async fn metrics(&self, service: &str) -> String {
        let response = self.ops_get(service, "/metrics", true).await;
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("metrics text")
    }

    /// The link's metrics, as Prometheus scrapes them.
    pub async fn link_metrics(&self) -> String {
        self.metrics("link").await
    }

    /// Starts another process of `service` (`link` or `portal`) on this
    /// hub's config, as `name`, with its own operations port (and, for a
    /// portal, its own listener at `https://localhost:{listen}`).
    pub fn spawn_another(&mut self, service: &'static str, name: &'static str) -> Another {
        self.spawn_another_with(service, name, &[])
    }

    /// [`Hub::spawn_another`], with `env` (`FREEPORT_...` overrides) set.
    pub fn spawn_another_with(
        &mut self,
        service: &'static str,
        name: &'static str,
        env: &[(&str, &str)],
    ) -> Another {
        let ops = free_port();
        let listen = free_port();
        let upper = service.to_ascii_uppercase();
        let mut command = Command::new(freeport_bin());
        command.args([service, "--config"]).arg(&self.config).env(
            format!("FREEPORT_{upper}__OPS_LISTEN"),
            format!("127.0.0.1:{ops}"),
        );
        if service == "portal" {
            command.env("FREEPORT_PORTAL__LISTEN", format!("127.0.0.1:{listen}"));
        }
        command.envs(env.iter().copied());
        self.ops_ports.insert(name, ops);
        Another {
            process: Process::spawn(name, &mut command, self.dir.path()),
            listen,
        }
    }

    /// The configuration file the services run with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Starts the catalog again (after a kill), on the same store.
    pub fn restart_catalog(&mut self) {
        self.catalog = Process::spawn(
            "catalog",
            Command::new(freeport_bin())
                .args(["catalog", "--config"])
                .arg(&self.config),
            self.dir.path(),
        );
    }

    /// Starts the link again (after a kill).
    pub fn restart_link(&mut self) {
        self.link = Process::spawn(
            "link",
            Command::new(freeport_bin())
                .args(["link", "--config"])
                .arg(&self.config),
            self.dir.path(),
        );
    }

    /// Creates an organization and returns an API key for it.
    pub async fn org(&self, name: &str, kind: &str) -> String {
        let admin = self.admin_key.clone();
        let created = self
            .call(
                "POST",
                "/v1/orgs",
                &admin,
                Some(json!({"name": name, "kind": kind})),
            )
            .await;
        assert_eq!(created.0, 201, "create org: {}", created.1);
        let key = self
            .call("POST", &format!("/v1/orgs/{name}/keys"), &admin, None)
            .await;
        assert_eq!(key.0, 201, "create key: {}", key.1);
        key.1["api_key"].as_str().expect("api_key").to_string()
    }

    /// A JSON call; returns the status and the parsed body (Null if empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A Kafka REST Proxy v2 call, the way REST Proxy clients make them
    /// (`Accept` and `Content-Type` of v2); the status and the parsed body
    /// (Null if empty or not JSON).
    pub async fn call_v2(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key)
            .header("accept", "application/vnd.kafka.v2+json");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/vnd.kafka.json.v2+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        )
    }

    /// Waits until the contract's `field` (`state`, `link_status`) reads `value`.
    pub async fn until_contract(&self, id: &str, field: &str, value: &str) {
        let admin = self.admin_key.clone();
        eventually(
            Duration::from_secs(30),
            &format!("contract {id} to have {field} {value:?}"),
            || {
                let admin = admin.clone();
                async move {
                    let (_, c) = self
                        .call("GET", &format!("/v1/contracts/{id}"), &admin, None)
                        .await;
                    (c[field] == value).then_some(())
                }
            },
        )
        .await;
    }

    /// Opens `stream`'s Server-Sent Events feed as `key` (`query` like
    /// `?from=end`, or empty); panics unless the portal answers 200.
    pub async fn feed(&self, stream: &str, key: &str, query: &str) -> SseReader {
        let response = self
            .http
            .get(format!("{}/v1/streams/{stream}/events{query}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("open the feed");
        assert_eq!(response.status(), 200, "open the feed of {stream}");
        SseReader::new(response)
    }

    /// Produces through the REST Proxy v2 endpoint.
    pub async fn produce(&self, topic: &str, key: &str, records: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/topics/{topic}", self.url))
            .bearer_auth(key)
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(json!({ "records": records }).to_string())
            .send()
            .await
            .expect("produce");
        let status = response.status().as_u16();
        (status, response.json().await.expect("produce answer"))
    }
}

/// The official AsyncAPI 3.0.0 JSON Schema, as published in the
/// `@asyncapi/specs` npm package, which tests/run.sh installs.
pub fn asyncapi_schema_path() -> PathBuf {
    std::env::var("FREEPORT_ASYNCAPI_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            workspace()
                .join("target/test-deps/asyncapi-specs/package/schemas/3.0.0-without-$id.json")
        })
}

/// Validates a document against the official AsyncAPI 3.0.0 schema and
/// returns every violation (empty when valid).
pub fn asyncapi_violations(document: &Value) -> Vec<String> {
    let path = asyncapi_schema_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the AsyncAPI 3.0 JSON Schema at {}: {e}; tests/run.sh installs it",
            path.display()
        )
    });
    let schema: Value = serde_json::from_str(&text).expect("the AsyncAPI schema is JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .expect("the AsyncAPI schema compiles");
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// Checks a mirrored copy of a numbered sequence: `produced` records whose
/// values are their sequence numbers, partition `n % partitions`. Every
/// source offset of every partition must be there once, in order.
/// Per partition of a copied numbered sequence: how many records, and which
/// source offsets are missing or repeated. For failure messages.
pub fn sequence_report(copied: &[Record], partitions: i32) -> String {
    let mut report = String::new();
    for partition in 0..partitions {
        // (source offset, destination offset), in destination order.
        let landed: Vec<(i64, i64)> = copied
            .iter()
            .filter(|r| r.partition == partition)
            .filter_map(|r| Some((r.header("freeport.source.offset")?.parse().ok()?, r.offset)))
            .collect();
        let jumps: Vec<String> = landed
            .windows(2)
            .filter(|w| w[1].0 != w[0].0 + 1 || w[1].1 != w[0].1 + 1)
            .take(20)
            .map(|w| format!("{}@{} -> {}@{}", w[0].0, w[0].1, w[1].0, w[1].1))
            .collect();
        let mut offsets: Vec<i64> = landed.iter().map(|(source, _)| *source).collect();
        offsets.sort_unstable();
        let repeated: Vec<i64> = offsets
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .take(20)
            .collect();
        offsets.dedup();
        let mut missing = vec![];
        let mut expected = 0;
        for &offset in &offsets {
            if offset > expected {
                missing.push(format!("{expected}..{}", offset - 1));
            }
            expected = offset + 1;
        }
        report.push_str(&format!(
            "partition {partition}: {} records, source offsets up to {}, missing {missing:?}, repeated {repeated:?}, jumps (source@destination) {jumps:?}\n",
            offsets.len(),
            expected - 1,
        ));
    }
    report
}

pub fn assert_exactly_once(copied: &[Record], produced: u64, partitions: i32) {
    assert_eq!(
        copied.len() as u64,
        produced,
        "{} copied, {produced} produced",
        copied.len()
    );
    let mut per_partition: std::collections::BTreeMap<i32, Vec<(i64, u64)>> = Default::default();
    for record in copied {
        let offset: i64 = record
            .header("freeport.source.offset")
            .expect("provenance")
            .parse()
            .expect("offset");
        let value: u64 = std::str::from_utf8(record.value.as_deref().expect("value"))
            .expect("utf-8")
            .parse()
            .expect("a number");
        assert_eq!(
            value % partitions as u64,
            record.partition as u64,
            "record {value} in the wrong partition"
        );
        per_partition
            .entry(record.partition)
            .or_default()
            .push((offset, value));
    }
    for (partition, records) in &per_partition {
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition}: every source offset once, in order"
        );
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {partition}: values out of order"
        );
    }
}

/// Produces a numbered sequence to `topic` (value = number, partition =
/// number % partitions) until `stop` fires; returns how many were produced.
pub async fn produce_sequence(
    cluster: ClusterConfig,
    topic: String,
    partitions: i32,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer =
        freeport_common::kafka::client_config(&cluster, "sequence-producer")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
    let mut n: u64 = 0;
    while !stop.is_cancelled() {
        let mut batch = Vec::new();
        for _ in 0..20 {
            let value = n.to_string();
            let key = format!("k{n}");
            let record = FutureRecord::to(&topic)
                .partition((n % partitions as u64) as i32)
                .key(&key)
                .payload(&value);
            batch.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queue"),
            );
            n += 1;
        }
        for delivery in batch {
            delivery
                .await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("produce");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    n
}

/// The usual cast of an end-to-end test: the owner organization `acme` on
/// its broker (cluster `acme`), the partner `globex` on another (cluster
/// `globex`), and the three services.
pub struct TwoOrgs {
    pub owner_cluster: Broker,
    pub partner_cluster: Broker,
    pub hub: Hub,
    /// API keys.
    pub owner: String,
    pub partner: String,
    /// Keeps the brokers' logs for as long as the sandbox lives.
    pub logs: tempfile::TempDir,
}

impl TwoOrgs {
    pub async fn start() -> TwoOrgs {
        let logs = tempfile::tempdir().expect("temp dir");
        let partner_cluster = Broker::start("broker-globex", logs.path()).await;
        TwoOrgs::start_with(partner_cluster, logs).await
    }

    /// [`TwoOrgs::start`] with a partner broker of the caller's making
    /// (behind TLS, say); `logs` holds the brokers' logs.
    pub async fn start_with(partner_cluster: Broker, logs: tempfile::TempDir) -> TwoOrgs {
        let owner_cluster = Broker::start("broker-acme", logs.path()).await;
        let hub = Hub::start_with(&[
            ("acme", owner_cluster.cluster()),
            ("globex", partner_cluster.cluster()),
        ])
        .await;
        TwoOrgs::from_parts(owner_cluster, partner_cluster, hub, logs).await
    }

    /// A sandbox of the caller's making: the two brokers and a hub whose
    /// clusters are `acme` and `globex`; creates the two organizations.
    pub async fn from_parts(
        owner_cluster: Broker,
        partner_cluster: Broker,
        hub: Hub,
        logs: tempfile::TempDir,
    ) -> TwoOrgs {
        let owner = hub.org("acme", "internal").await;
        let partner = hub.org("globex", "partner").await;
        TwoOrgs {
            owner_cluster,
            partner_cluster,
            hub,
            owner,
            partner,
            logs,
        }
    }

    /// Registers a stream of the owner's, shared with partners; `extra`
    /// fields are merged into the request.
    pub async fn stream(&self, name: &str, partitions: i32, extra: Value) -> Value {
        let mut body = json!({
            "name": name, "cluster": "acme", "topic": name,
            "partitions": partitions, "classification": "partner",
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, stream) = self
            .hub
            .call("POST", "/v1/streams", &self.owner, Some(body))
            .await;
        assert_eq!(status, 201, "register {name}: {stream}");
        stream
    }

    /// The partner requests `stream` into `topic` on its cluster (with
    /// `terms`, when not null) and an admin approves; returns the contract id.
    pub async fn approved_contract(&self, stream: &str, topic: &str, terms: Value) -> String {
        let id = self.requested_contract(stream, topic, terms).await;
        self.approve(&id).await;
        id
    }

    /// [`TwoOrgs::approved_contract`], waiting until the link runs it.
    pub async fn active_contract(&self, stream: &str, topic: &str, terms: Value) -> String {
        let id = self.approved_contract(stream, topic, terms).await;
        self.until_active(&id).await;
        id
    }

    /// The partner requests `stream` into `topic` (not yet approved).
    pub async fn requested_contract(&self, stream: &str, topic: &str, terms: Value) -> String {
        let mut body = json!({
            "stream": stream, "purpose": "test",
            "destination": {"cluster": "globex", "topic": topic},
        });
        if !terms.is_null() {
            body["terms"] = terms;
        }
        let (status, contract) = self
            .hub
            .call("POST", "/v1/contracts", &self.partner, Some(body))
            .await;
        assert_eq!(status, 201, "request: {contract}");
        contract["id"].as_str().expect("contract id").to_string()
    }

    /// An admin approves the contract.
    pub async fn approve(&self, id: &str) {
        let (status, approved) = self
            .hub
            .call(
                "POST",
                &format!("/v1/contracts/{id}/approve"),
                &self.hub.admin_key,
                None,
            )
            .await;
        assert_eq!(status, 200, "approve: {approved}");
    }

    /// Waits for the link to run the contract's mirror.
    pub async fn until_active(&self, id: &str) {
        self.hub.until_contract(id, "state", "active").await;
    }
}

/// The value of the sample `name{labels...}` in Prometheus text, where each
/// of `labels` (`key="value"`) is among the sample's labels.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| rest.contains(l)))
                .then(|| value.parse().ok())?
        })
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// The `value.n` of each record event (the numbered records tests produce).
pub fn event_numbers(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            let record: Value = serde_json::from_str(&e.data).expect("record JSON");
            record["value"]["n"].as_u64().expect("n")
        })
        .collect()
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next `count` `record` events, other events skipped (panics when
    /// one takes over 30 s or the feed ends first).
    pub async fn records(&mut self, count: usize) -> Vec<SseEvent> {
        let mut found = Vec::new();
        while found.len() < count {
            let event = tokio::time::timeout(Duration::from_secs(30), self.next())
                .await
                .unwrap_or_else(|_| panic!("no event after {} of {count}", found.len()))
                .unwrap_or_else(|| panic!("the feed ended after {} of {count}", found.len()));
            if event.event == "record" {
                found.push(event);
            }
        }
        found
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    ..SseEvent::default()
                };
                let mut data = vec![];
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_string());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    }
                }
                if data.is_empty() && event.id.is_none() {
                    continue; // a comment (keep-alive)
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let chunk = match self.body.next().await? {
                Ok(chunk) => chunk,
                Err(e) => {
                    eprintln!("SSE body failed: {e:?}");
                    return None;
                }
            };
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
