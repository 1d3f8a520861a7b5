//! A small W3C WebDriver client over Debian's `chromedriver`, driving headless
//! Chromium: sessions, navigation, elements, scripts and screenshots.
//!
//! The browser resolves no host name but 127.0.0.1 and localhost, so a page
//! that needed the network, or reached another origin, would show it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    /// chromedriver's port, claimed until the browser is dropped.
    _port: crate::util::Ports,
}

#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// Start chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        let ports = crate::util::ports(1);
        let port = ports.first;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver; scripts/setup.sh installs it)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent
            .get(format!("{root}/status"))
            .call()
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                ]
            }
        }}});
        let mut browser = Browser {
            driver,
            _port: ports,
            base: root.clone(),
            agent,
        };
        let session = browser.send("POST", "/session", Some(capabilities));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_string();
        browser.base = format!("{root}/session/{id}");
        browser
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        body["value"].clone()
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.send(method, path, body);
        if let Some(e) = v.get("error") {
            panic!("{method} {path}: {e}: {}", v["message"]);
        }
        v
    }

    pub fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.send(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.into())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element `css` matches, waiting up to `secs` for it.
    pub fn find(&self, css: &str, secs: u64) -> Element {
        self.wait(secs, &format!("an element matching `{css}`"), |b| {
            b.find_all(css).into_iter().next()
        })
    }

    pub fn text(&self, e: &Element) -> String {
        self.send("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.send("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .as_str()
            .map(str::to_string)
    }

    /// Click the first element `css` matches, waiting up to `secs` for it.
    /// The console redraws its tables on every poll, so an element found a
    /// moment ago may be gone by the click ("stale element reference", seen
    /// on a loaded machine): then it is found again.
    pub fn click(&self, css: &str, secs: u64) {
        self.wait(secs, &format!("a click on `{css}`"), |b| {
            let e = b.find_all(css).into_iter().next()?;
            let v = b.send("POST", &format!("/element/{}/click", e.0), None);
            match v.get("error").and_then(Value::as_str) {
                None => Some(()),
                Some("stale element reference") => None,
                Some(other) => panic!("click on `{css}`: {other}: {}", v["message"]),
            }
        })
    }

    pub fn clear(&self, e: &Element) {
        self.ok("POST", &format!("/element/{}/clear", e.0), None);
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.ok(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    /// Run `script` in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The text of everything `css` matches.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css).iter().map(|e| self.text(e)).collect()
    }

    /// Poll `f` until it gives something, or fail after `secs`.
    pub fn wait<T>(&self, secs: u64, what: &str, f: impl Fn(&Browser) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.script("return document.body.innerText");
                panic!(
                    "waited {secs} s for {what}; the page says:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let data = self.ok("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
