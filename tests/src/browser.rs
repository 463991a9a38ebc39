//! A real headless Chromium driven over the DevTools protocol, for the web
//! UI's tests: pages are opened, scripts evaluated in them, and conditions
//! waited for, as a user's browser would run the UI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{find_binary, free_port, Process};

/// Chromium: `CHROMIUM_BIN`, or `chromium` / `chromium-browser` /
/// `google-chrome` on the PATH (tests/run.sh installs it).
pub fn chromium_bin() -> PathBuf {
    let mut candidates = vec![];
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                candidates.push(dir.join(name));
            }
        }
    }
    find_binary(
        "CHROMIUM_BIN",
        &candidates,
        "tests/run.sh installs chromium",
    )
}

pub struct Browser {
    _process: Process,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a headless Chromium that trusts any certificate (the test
    /// hub's is from its own development CA).
    pub async fn start(log_dir: &Path) -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().expect("browser profile");
        let process = Process::spawn(
            "chromium",
            Command::new(chromium_bin())
                .arg("--headless=new")
                .arg("--no-sandbox")
                .arg("--disable-gpu")
                .arg("--disable-dev-shm-usage")
                .arg("--no-first-run")
                .arg("--ignore-certificate-errors")
                .arg(format!("--remote-debugging-port={port}"))
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("about:blank"),
            log_dir,
        );
        let browser = Browser {
            _process: process,
            port,
            _profile: profile,
        };
        crate::eventually(Duration::from_secs(30), "chromium to listen", || async {
            reqwest::get(format!("http://127.0.0.1:{port}/json/version"))
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        browser
    }

    /// A new tab (its own sessionStorage).
    pub async fn page(&self) -> Page {
        let target: Value = reqwest::Client::new()
            .put(format!(
                "http://127.0.0.1:{}/json/new?about:blank",
                self.port
            ))
            .send()
            .await
            .expect("new tab")
            .json()
            .await
            .expect("tab description");
        let url = target["webSocketDebuggerUrl"]
            .as_str()
            .expect("the tab's DevTools address")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("DevTools connection");
        Page { socket, next_id: 0 }
    }
}

pub struct Page {
    socket: WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .expect("DevTools request");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools connection open")
                .expect("DevTools message");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {}", answer["error"]);
                return answer["result"].clone();
            }
        }
    }

    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Evaluates `script` in the page (awaiting a promise it returns) and
    /// gives its value; a thrown exception fails the test.
    pub async fn eval(&mut self, script: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": script, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{script}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits (up to `timeout`) until `condition` evaluates truthy in the
    /// page; its value. On a timeout, fails with the page's text.
    pub async fn wait_for(&mut self, condition: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let check =
            format!("(() => {{ try {{ return {condition}; }} catch (e) {{ return null; }} }})()");
        loop {
            let value = self.eval(&check).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!("timed out waiting for {condition}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
