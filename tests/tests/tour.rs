//! The README's walkthroughs, run verbatim against a fresh `freeport up`: if
//! a newcomer can paste them, so can these tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use freeport_tests::{asyncapi_schema_path, eventually, freeport_bin, workspace, Process};

/// Both walkthroughs use the portal port the README names; one at a time.
static README_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `sh` blocks of a README section, in order (`bash` blocks, which
/// start the hub, are the reader's to run in another terminal).
fn section_blocks(readme: &str, heading: &str) -> Vec<String> {
    let section = readme
        .split_once(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a {heading} section"))
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut blocks = vec![];
    let mut rest = section;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("closed code block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

fn readme() -> String {
    std::fs::read_to_string(workspace().join("README.md")).unwrap()
}

/// `freeport up --data-dir freeport-data` in a fresh folder, as the README
/// has the reader start it, plus `extra` arguments.
struct Walkthrough {
    dir: tempfile::TempDir,
    hub: Process,
}

struct Outcome {
    stdout: String,
    stderr: String,
    success: bool,
}

impl Walkthrough {
    async fn start(extra: &[&std::ffi::OsStr]) -> Walkthrough {
        assert!(
            std::net::TcpStream::connect("127.0.0.1:8080").is_err(),
            "port 8080 is taken (another freeport up?); the README uses it as written"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Process::spawn(
            "freeport-up",
            Command::new(freeport_bin())
                .args(["up", "--data-dir", "freeport-data"])
                .args(extra)
                .current_dir(dir.path()),
            dir.path(),
        );
        // As a reader would: the commands come once it says it is up (it
        // says so when the portal answers from the catalog).
        eventually(Duration::from_secs(30), "freeport up to be ready", || {
            let ready = hub.log().contains("Freeport is up");
            async move { ready.then_some(()) }
        })
        .await;
        hub.assert_running();
        Walkthrough { dir, hub }
    }

    /// Runs the blocks in one bash, in the folder, with `freeport` on PATH.
    async fn run(&self, blocks: &[String]) -> Outcome {
        let bin_dir: PathBuf = freeport_bin().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let dir = self.dir.path().to_path_buf();
        let script = blocks.join("\n");
        let output = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir)
                .env("PATH", path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        Outcome {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            success: output.status.success(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_when_pasted_verbatim() {
    let _port = README_PORT.lock().await;
    let readme = readme();
    assert!(
        readme.contains("freeport up --data-dir freeport-data"),
        "the README's run command is what the tour assumes"
    );
    let blocks = section_blocks(&readme, "Tour");
    assert!(blocks.len() >= 8, "the tour lost its steps: {blocks:#?}");

    let walkthrough = Walkthrough::start(&[]).await;
    let banner = walkthrough.hub.log();
    assert!(banner.contains("http://127.0.0.1:8080"), "{banner}");
    assert!(
        banner.contains("MOCK cluster"),
        "the mock clusters must say what they are: {banner}"
    );

    let Outcome {
        stdout,
        stderr,
        success,
    } = walkthrough.run(&blocks).await;
    assert!(
        success,
        "the tour failed:\n{stdout}\n{stderr}\n{}",
        walkthrough.hub.log()
    );
    assert!(
        stdout.contains(r#"{"state":"active","link_status":"running"}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"state":"active","delivery":"push"}"#)
            && stdout.contains("pushed records: 4"),
        "a push contract is active on approval and reads over SSE: {stdout}"
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
    let readme = readme();
    let blocks = section_blocks(&readme, "Publishing an AsyncAPI document");
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    assert!(readme.contains("--asyncapi-schema 'package/schemas/3.0.0-without-$id.json'"));
    // The same schema file the README has the reader unpack from npm.
    let schema = asyncapi_schema_path();
    let walkthrough = Walkthrough::start(&["--asyncapi-schema".as_ref(), schema.as_os_str()]).await;
    let Outcome {
        stdout,
        stderr,
        success,
    } = walkthrough.run(&blocks).await;
    assert!(success, "{stdout}\n{stderr}\n{}", walkthrough.hub.log());
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
