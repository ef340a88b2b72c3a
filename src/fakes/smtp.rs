//! A fake SMTP relay on 127.0.0.1, speaking plain-text ESMTP as a local relay does (RFC 5321 with
//! AUTH PLAIN and LOGIN, RFC 4954): greeting, `EHLO`/`HELO`, `AUTH`, `MAIL`, `RCPT`, `DATA`,
//! `RSET`, `NOOP`, `QUIT`.
//!
//! Owns the fake's state (its one login, the messages it accepted, the logins tried). Rule kept:
//! never looser than a relay: a wrong login is 535, mail before a login is 530, commands out of
//! order are 503, unknown ones 502.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    username: String,
    password: String,
    messages: Vec<String>,
    logins_ok: usize,
    logins_refused: usize,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake relay.
pub struct FakeSmtp {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtp")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    /// Binds 127.0.0.1 on a free port; accepts the login `username` / `password`.
    pub async fn start(username: &str, password: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake SMTP port");
        let addr = listener.local_addr().expect("the fake SMTP address");
        let state = Arc::new(Mutex::new(State {
            username: username.to_owned(),
            password: password.to_owned(),
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// The port it listens on (plain text: `email.smtp.tls = "none"`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted, as received after `DATA`.
    pub fn messages(&self) -> Vec<String> {
        lock(&self.state).messages.clone()
    }

    /// Logins accepted and refused so far.
    pub fn logins(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.logins_ok, state.logins_refused)
    }
}

const HOST: &str = "fake-smtp.local";
/// What `EHLO` offers after the greeting line.
const EHLO_EXTENSIONS: &str = "250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n";

/// One client connection, until `QUIT` or hang-up.
async fn session(stream: TcpStream, state: Shared) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut authenticated = false;
    let mut has_sender = false;
    let mut recipients = 0;
    macro_rules! say {
        ($($arg:tt)*) => {
            if write.write_all(format!($($arg)*).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    say!("220 {HOST} ESMTP fake relay\r\n");
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let verb = upper
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        match verb.as_str() {
            "EHLO" => say!("250-{HOST}\r\n{EHLO_EXTENSIONS}"),
            "HELO" => say!("250 {HOST}\r\n"),
            "AUTH" if authenticated => say!("503 5.5.1 Already authenticated\r\n"),
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let mechanism = words.get(1).map(|m| m.to_ascii_uppercase());
                let credentials = match mechanism.as_deref() {
                    Some("PLAIN") => {
                        let encoded = if let Some(inline) = words.get(2) {
                            (*inline).to_owned()
                        } else {
                            say!("334 \r\n");
                            match lines.next_line().await {
                                Ok(Some(next)) => next,
                                _ => return,
                            }
                        };
                        decode(&encoded).and_then(|plain| {
                            let mut parts = plain.split('\0');
                            let _authzid = parts.next()?;
                            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                        })
                    }
                    Some("LOGIN") => {
                        say!("334 VXNlcm5hbWU6\r\n");
                        let user = match lines.next_line().await {
                            Ok(Some(next)) => decode(&next),
                            _ => return,
                        };
                        say!("334 UGFzc3dvcmQ6\r\n");
                        let password = match lines.next_line().await {
                            Ok(Some(next)) => decode(&next),
                            _ => return,
                        };
                        user.zip(password)
                    }
                    _ => {
                        say!("504 5.5.4 Unrecognized authentication type\r\n");
                        continue;
                    }
                };
                let accepted = {
                    let mut s = lock(&state);
                    let ok = credentials
                        .as_ref()
                        .is_some_and(|(u, p)| *u == s.username && *p == s.password);
                    if ok {
                        s.logins_ok += 1;
                    } else {
                        s.logins_refused += 1;
                    }
                    ok
                };
                if accepted {
                    authenticated = true;
                    say!("235 2.7.0 Authentication successful\r\n");
                } else {
                    say!("535 5.7.8 Authentication credentials invalid\r\n");
                }
            }
            "MAIL" if !authenticated => say!("530 5.7.0 Authentication required\r\n"),
            "MAIL" => {
                has_sender = true;
                recipients = 0;
                say!("250 2.1.0 Ok\r\n");
            }
            "RCPT" if !has_sender => say!("503 5.5.1 Error: need MAIL command\r\n"),
            "RCPT" => {
                recipients += 1;
                say!("250 2.1.5 Ok\r\n");
            }
            "DATA" if recipients == 0 => say!("503 5.5.1 Error: need RCPT command\r\n"),
            "DATA" => {
                say!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut message = String::new();
                loop {
                    match lines.next_line().await {
                        Ok(Some(l)) if l == "." => break,
                        Ok(Some(l)) => {
                            message.push_str(l.strip_prefix('.').unwrap_or(&l));
                            message.push('\n');
                        }
                        _ => return,
                    }
                }
                lock(&state).messages.push(message);
                has_sender = false;
                recipients = 0;
                say!("250 2.0.0 Ok: queued\r\n");
            }
            "RSET" => {
                has_sender = false;
                recipients = 0;
                say!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => say!("250 2.0.0 Ok\r\n"),
            "QUIT" => {
                say!("221 2.0.0 Bye\r\n");
                return;
            }
            _ => say!("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}

fn decode(text: &str) -> Option<String> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}
