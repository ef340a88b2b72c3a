//! The fake gateway: a websocket server speaking Discord's gateway protocol (v10, JSON text
//! frames, no transport compression).
//!
//! Owns the session life cycle: HELLO on connect; IDENTIFY with the right token → READY (a bad
//! token closes with 4004, as Discord does); RESUME of the known session → RESUMED, of any other
//! → op 9 (not resumable) so the client identifies afresh; op 1 heartbeats → op 11. One session
//! is live at a time (the newest identified or resumed connection); dispatches made while none is
//! live are queued and flushed after the next READY/RESUMED, so nothing a test sends is lost
//! across a reconnect.

use std::borrow::Cow;
use std::sync::Weak;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Inner, lock, mutate, wire};

/// Frames a connection's writer sends: JSON text, or a close with a gateway close code.
enum Out {
    Text(String),
    Close(u16, &'static str),
}

pub(super) async fn serve(listener: TcpListener, inner: Weak<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(stream, inner).await {
                tracing::debug!(error = %err, "fake Discord gateway connection ended");
            }
        });
    }
}

async fn connection(stream: TcpStream, weak: Weak<Inner>) -> anyhow::Result<()> {
    let socket = tokio_tungstenite::accept_async(stream).await?;
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (close_tx, mut close_rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        loop {
            let out = tokio::select! {
                Some(frame) = rx.recv() => Out::Text(frame),
                Some(out) = close_rx.recv() => out,
                else => break,
            };
            let result = match out {
                Out::Text(text) => sink.send(Message::Text(text)).await,
                Out::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: Cow::Borrowed(reason),
                        })))
                        .await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
    });

    let connection_id = {
        let Some(inner) = weak.upgrade() else {
            return Ok(());
        };
        mutate(&inner, |s| {
            s.gateway.connections += 1;
            s.gateway.next_connection += 1;
            let _ = tx.send(
                json!({"op": 10, "d": {"heartbeat_interval": s.options.heartbeat_interval_ms}})
                    .to_string(),
            );
            s.gateway.next_connection
        })
    };

    while let Some(frame) = source.next().await {
        let text = match frame? {
            Message::Text(text) => text,
            Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some(inner) = weak.upgrade() else { break };
        let Ok(payload) = serde_json::from_str::<Value>(&text) else {
            // Discord closes with 4002 (decode error).
            let _ = close_tx.send(Out::Close(4002, "Error while decoding payload."));
            break;
        };
        match payload["op"].as_u64() {
            Some(1) => {
                mutate(&inner, |s| s.gateway.heartbeats += 1);
                let _ = tx.send(json!({"op": 11}).to_string());
            }
            Some(2) => {
                let token = payload["d"]["token"].as_str().unwrap_or_default();
                let expected = lock(&inner).options.token.clone();
                if token.strip_prefix("Bot ").unwrap_or(token) != expected {
                    let _ = close_tx.send(Out::Close(4004, "Authentication failed."));
                    break;
                }
                identify(&inner, connection_id, &tx);
            }
            Some(6) => {
                let session = payload["d"]["session_id"].as_str().unwrap_or_default();
                resume(&inner, connection_id, session, &tx);
            }
            // Presence updates, voice state, request guild members: accepted, nothing to do.
            Some(3 | 4 | 8) => {}
            _ => {
                let _ = close_tx.send(Out::Close(4001, "Unknown opcode."));
                break;
            }
        }
    }

    if let Some(inner) = weak.upgrade() {
        mutate(&inner, |s| {
            if s.gateway
                .live
                .as_ref()
                .is_some_and(|(id, _)| *id == connection_id)
            {
                s.gateway.live = None;
            }
        });
    }
    drop(tx);
    drop(close_tx);
    let _ = writer.await;
    Ok(())
}

fn identify(inner: &Inner, connection_id: u64, tx: &mpsc::UnboundedSender<String>) {
    mutate(inner, |s| {
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        s.gateway.identifies += 1;
        s.gateway.seq = 0;
        s.gateway.session_id = Some(session_id.clone());
        let ready = wire::ready(s.bot_user_id, s.application_id, &session_id, &s.gateway_url);
        let frame = s.gateway.frame("READY", &ready);
        let _ = tx.send(frame);
        go_live(s, connection_id, tx);
    });
}

fn resume(inner: &Inner, connection_id: u64, session: &str, tx: &mpsc::UnboundedSender<String>) {
    mutate(inner, |s| {
        if s.gateway.session_id.as_deref() == Some(session) {
            s.gateway.resumes += 1;
            let frame = s.gateway.frame("RESUMED", &json!({}));
            let _ = tx.send(frame);
            go_live(s, connection_id, tx);
        } else {
            let _ = tx.send(json!({"op": 9, "d": false}).to_string());
        }
    });
}

/// Makes this connection the live one and flushes what was queued meanwhile.
fn go_live(s: &mut super::State, connection_id: u64, tx: &mpsc::UnboundedSender<String>) {
    s.gateway.live = Some((connection_id, tx.clone()));
    for (event, data) in std::mem::take(&mut s.gateway.pending) {
        let frame = s.gateway.frame(&event, &data);
        let _ = tx.send(frame);
    }
}

pub(super) fn dispatch(inner: &Inner, event: &str, data: Value) {
    mutate(inner, |s| {
        s.dispatched.push((event.to_owned(), data.clone()));
        let live = s.gateway.live.clone();
        match live {
            Some((_, tx)) => {
                let frame = s.gateway.frame(event, &data);
                if tx.send(frame).is_err() {
                    s.gateway.live = None;
                    s.gateway.seq -= 1;
                    s.gateway.pending.push((event.to_owned(), data));
                }
            }
            None => s.gateway.pending.push((event.to_owned(), data)),
        }
    });
}

pub(super) fn request_reconnect(inner: &Inner) {
    mutate(inner, |s| {
        if let Some((_, tx)) = s.gateway.live.take() {
            let _ = tx.send(json!({"op": 7, "d": null}).to_string());
        }
    });
}
