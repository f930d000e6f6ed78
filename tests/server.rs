//! The example server as an operator runs it: a real process with an open event stream
//! (as an open dashboard keeps one), stopped with SIGINT or SIGTERM. It must end the
//! stream with a last `shutdown` event and exit cleanly within its grace period.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example server's binary, built beside this test by `cargo test`.
fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    debug.join("examples").join("server")
}

/// Starts the server on a free port (in memory, no token) and returns it with its address.
fn start() -> (Child, String) {
    start_on("memory")
}

/// Starts the server on a free port with the storage `url` (no token).
fn start_on(url: &str) -> (Child, String) {
    let mut child = Command::new(server_binary())
        .env("JOBS_ADDR", "127.0.0.1:0")
        .env("JOBS_DATABASE_URL", url)
        .env_remove("DATABASE_URL")
        .env_remove("JOBS_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example server (built by `cargo test`)");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server printed no address");
        };
        if let Some(at) = line.find("http://") {
            let address = line[at + "http://".len()..]
                .split('/')
                .next()
                .expect("an address")
                .to_owned();
            return (child, address);
        }
    }
}

/// Opens `GET /events` and reads until the response's headers have arrived.
fn open_stream(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the stream's headers");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// Sends `signal` to the server, then waits for it to exit, at most `limit`.
fn stop(child: &mut Child, signal: &str, limit: Duration) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit within {limit:?} of {signal} with a stream open");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stops_cleanly_with_an_open_stream(signal: &str) {
    let (mut child, address) = start();
    let mut stream = open_stream(&address);
    // Well within the server's shutdown grace period (10 s).
    let status = stop(&mut child, signal, Duration::from_secs(8));
    assert!(status.success(), "exit status after {signal}: {status:?}");
    let mut rest = String::new();
    let _ = stream.read_to_string(&mut rest);
    assert!(
        rest.contains("event: shutdown"),
        "the stream ended with a shutdown event: {rest:?}"
    );
}

#[test]
fn sigint_stops_the_server_with_a_dashboard_stream_open() {
    stops_cleanly_with_an_open_stream("-INT");
}

#[test]
fn sigterm_stops_the_server_with_a_dashboard_stream_open() {
    stops_cleanly_with_an_open_stream("-TERM");
}

/// Sends one HTTP/1.1 request and returns the status code and body.
fn request(address: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// The value of the string field `field` in a JSON text (enough for ids and statuses).
fn field(json: &str, field: &str) -> String {
    let at = json
        .find(&format!("\"{field}\":\""))
        .unwrap_or_else(|| panic!("no field {field} in {json}"))
        + field.len()
        + 4;
    json[at..].split('"').next().unwrap().to_owned()
}

#[test]
fn jobs_submitted_before_the_server_is_killed_are_there_after_a_restart_and_queued_ones_run() {
    let dir = std::env::temp_dir().join(format!("jobs-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("jobs.sqlite3").display());

    let (mut child, address) = start_on(&url);
    let (status, failed) = request(
        &address,
        "POST",
        "/jobs",
        Some(r#"{"type": "AlwaysFails", "payload": "before the crash"}"#),
    );
    assert_eq!(status, 201, "{failed}");
    // Due in two seconds: still queued when the server dies.
    let (status, later) = request(
        &address,
        "POST",
        "/jobs",
        Some(r#"{"type": "AlwaysFails", "payload": "after the restart", "delayMs": 2000}"#),
    );
    assert_eq!(status, 201, "{later}");
    let (failed, later) = (field(&failed, "id"), field(&later, "id"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while field(
        &request(&address, "GET", &format!("/jobs/{failed}"), None).1,
        "status",
    ) != "Failed"
    {
        assert!(
            Instant::now() < deadline,
            "the first job did not fail in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown at all
    child.wait().unwrap();

    let (mut child, address) = start_on(&url);
    let (status, body) = request(&address, "GET", &format!("/jobs/{failed}"), None);
    assert_eq!(
        (status, field(&body, "status")),
        (200, "Failed".to_owned()),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = request(&address, "GET", &format!("/jobs/{later}"), None);
        assert_eq!(status, 200, "the queued job is still there: {body}");
        if field(&body, "status") == "Failed" {
            assert!(body.contains("after the restart"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queued job did not run after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = stop(&mut child, "-TERM", Duration::from_secs(8));
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
