//! A `sluice daemon` process and a client for its API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub token: Option<String>,
    agent: ureq::Agent,
    log: std::path::PathBuf,
}

/// Start `sluice daemon --pipelines DIR --state STATE --listen 127.0.0.1:0` in
/// `dir` and wait for the line that says where it listens.
pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    let log = dir.join("daemon.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "daemon",
            "--pipelines",
            "pipelines",
            "--state",
            "state",
            "--poll",
            "200ms",
        ])
        .args(extra)
        .args(if extra.contains(&"--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        })
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("SLUICE_API_TOKEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}; log:\n{}", read(&log)))
        .to_string();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let token = env
        .iter()
        .find(|(k, _)| *k == "SLUICE_API_TOKEN")
        .map(|(_, v)| v.to_string());
    Daemon {
        child,
        url,
        token,
        agent,
        log,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Daemon {
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()));
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
    }

    /// POST `body` (JSON) to `path`: (status, content type, body bytes).
    pub fn post(&self, path: &str, body: &Value) -> (u16, String, Vec<u8>) {
        let mut req = self.agent.post(format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("POST {path}: {e}; log:\n{}", self.log()));
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (
            resp.status().as_u16(),
            ctype,
            resp.body_mut().read_to_vec().unwrap(),
        )
    }

    /// GET a JSON document that must answer 200.
    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn pipeline(&self, name: &str) -> Value {
        self.json(&format!("/v1/pipelines/{name}"))
    }

    pub fn committed(&self, name: &str) -> u64 {
        self.pipeline(name)["epoch"]["committed"].as_u64().unwrap()
    }

    /// Poll `name` until `ok` holds of its detail, or fail after `secs`.
    pub fn wait(&self, name: &str, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.pipeline(name);
            if ok(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pipeline `{name}` never {what} in {secs} s; last:\n{p:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `name` has checkpointed past `epoch`.
    pub fn wait_past(&self, name: &str, epoch: u64) -> u64 {
        let p = self.wait(name, 30, &format!("checkpointed past epoch {epoch}"), |p| {
            p["epoch"]["committed"].as_u64().unwrap_or(0) > epoch
        });
        p["epoch"]["committed"].as_u64().unwrap()
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut rest = String::new();
                use std::io::Read;
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut rest)
                    .unwrap();
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "no exit 60 s after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a new small document into each of `folders` every `every`, until dropped,
/// so that the pipelines reading them keep cutting epochs.
pub struct Feeder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    pub fn start(folders: Vec<std::path::PathBuf>, every: Duration) -> Feeder {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for f in &folders {
                    std::fs::create_dir_all(f).unwrap();
                    std::fs::write(
                        f.join(format!("doc-{i:05}.md")),
                        format!("# Note {i}\n\nSome words about {i}.\n"),
                    )
                    .unwrap();
                }
                i += 1;
                std::thread::sleep(every);
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pipeline `name` that watches `../data/<name>` and writes `../out/<name>`.
pub fn watched(name: &str, max_tokens: u32) -> String {
    format!(
        r#"name: {name}
checkpoint: {{interval: 100ms}}
source: {{type: files, path: ../data/{name}, watch: true, poll_interval: 100ms}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: {max_tokens}, overlap_tokens: 0}}
sinks:
  - {{name: out, type: parquet, path: ../out/{name}}}
"#
    )
}
