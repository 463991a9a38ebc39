//! The README's Tour, run verbatim against a fresh `freeport up`: if a
//! newcomer can paste it, so can this test.

use std::process::Command;
use std::time::Duration;

use freeport_tests::{eventually, freeport_bin, workspace, Process};

/// Both README walkthroughs use the portal port the README names; one at a time.
static README_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `sh` blocks of a README section, in order (`bash` blocks, which
/// start the hub, are the reader's to run in another terminal).
fn section_blocks(readme: &str, heading: &str) -> Vec<String> {
    let tour = readme
        .split_once(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a {heading} section"))
        .1;
    let tour = tour.split("\n## ").next().unwrap_or(tour);
    let mut blocks = vec![];
    let mut rest = tour;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("closed code block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_when_pasted_verbatim() {
    let _port = README_PORT.lock().await;
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    assert!(
        readme.contains("freeport up --data-dir freeport-data"),
        "the README's run command is what the tour assumes"
    );
    let blocks = section_blocks(&readme, "Tour");
    assert!(blocks.len() >= 8, "the tour lost its steps: {blocks:#?}");

    assert!(
        std::net::TcpStream::connect("127.0.0.1:8080").is_err(),
        "port 8080 is taken (another freeport up?); the tour uses it as written"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = freeport_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut hub = Process::spawn(
        "freeport-up",
        Command::new(freeport_bin())
            .args(["up", "--data-dir", "freeport-data"])
            .current_dir(dir.path()),
        dir.path(),
    );
    let credentials = dir.path().join("freeport-data/dev-credentials.json");
    eventually(Duration::from_secs(30), "freeport up to be ready", || {
        let ready = credentials.exists() && std::net::TcpStream::connect("127.0.0.1:8080").is_ok();
        async move { ready.then_some(()) }
    })
    .await;
    hub.assert_running();
    let banner = hub.log();
    assert!(banner.contains("http://127.0.0.1:8080"), "{banner}");
    assert!(
        banner.contains("MOCK cluster"),
        "the mock clusters must say what they are: {banner}"
    );

    let script = blocks.join("\n");
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir)
                .env("PATH", path)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tour failed:\n{stdout}\n{stderr}\n{}",
        hub.log()
    );

    assert!(
        stdout.contains(r#"{"state":"active","link_status":"running"}"#),
        "{stdout}"
    );
    let mirrored: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.contains("freeport.contract"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut keys: Vec<_> = mirrored
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [r#""order-1""#, r#""order-2""#, r#""order-3""#],
        "{stdout}"
    );
    let first = mirrored
        .iter()
        .find(|r| r["key"] == r#""order-1""#)
        .unwrap();
    assert_eq!(first["partition"], 0);
    assert_eq!(
        first["headers"][0],
        serde_json::json!({"name": "source", "value": "webshop"})
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&"3"),
        "after revocation the partner still has 3 records: {stdout}"
    );
    assert!(stdout.contains(r#""error_code":40902"#), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_publishing_section_works_when_pasted_verbatim() {
    let _port = README_PORT.lock().await;
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let blocks = section_blocks(&readme, "Publishing an AsyncAPI document");
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    assert!(readme.contains("--asyncapi-schema 'package/schemas/3.0.0-without-$id.json'"));
    assert!(
        std::net::TcpStream::connect("127.0.0.1:8080").is_err(),
        "port 8080 is taken (another freeport up?); the README uses it as written"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = freeport_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The same schema file the README has the reader unpack from npm.
    let mut hub = Process::spawn(
        "freeport-up",
        Command::new(freeport_bin())
            .args(["up", "--data-dir", "freeport-data", "--asyncapi-schema"])
            .arg(freeport_tests::asyncapi_schema_path())
            .current_dir(dir.path()),
        dir.path(),
    );
    let credentials = dir.path().join("freeport-data/dev-credentials.json");
    eventually(Duration::from_secs(30), "freeport up to be ready", || {
        let ready = credentials.exists() && std::net::TcpStream::connect("127.0.0.1:8080").is_ok();
        async move { ready.then_some(()) }
    })
    .await;
    hub.assert_running();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let script = blocks.join("\n");
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir)
                .env("PATH", path)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], r#"{"name":"payments","topic":"payments","schema_version":1}"#,
        "{stdout}"
    );
    assert!(
        lines[1].contains(r#""pointer":"/operations/receivePayments/action""#),
        "{stdout}"
    );
}
