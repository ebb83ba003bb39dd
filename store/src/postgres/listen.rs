//! Announcements of committed jobs, through Postgres `LISTEN`/`NOTIFY`.
//!
//! Every insert notifies [`CHANNEL`] with the ids of its new jobs, in its own
//! transaction: Postgres delivers the notification only once that commits, to every
//! connection that listens then. A node that wants them (the CapacityManager's) holds
//! one connection outside the pool that listens and turns each notification into a
//! [`Notice::Queued`]. Should that connection break, it is opened again with the pool's
//! backoff, and [`Notice::Resumed`] says that notifications may have been missed
//! meanwhile. The task ends when the receiver is dropped.

use std::sync::Arc;
use std::time::Duration;

use marie_protocol::JobId;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::connect::next_pause;
use crate::Notice;

/// The channel inserts notify.
pub const CHANNEL: &str = "marie_jobs";

/// Most ids in one notification: 200 ids of 36 characters and their commas stay under
/// Postgres's 8,000-byte payload limit.
pub const IDS_PER_NOTIFICATION: i64 = 200;

/// How long the listening connection may stay silent before TCP asks whether the server
/// is still there (a server gone without closing the connection, behind a partition).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Starts listening over a connection of its own to `config` (`url` is how it is
/// shown, password masked).
pub fn spawn(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    url: Arc<str>,
) -> mpsc::UnboundedReceiver<Notice> {
    let mut config = config.clone();
    config.keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
    let (notices, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        tokio::select! {
            () = notices.closed() => {}
            () = listen(&config, &tls, &url, &notices) => {}
        }
    });
    receiver
}

/// Listens, and listens again after every lost connection, until the receiver is gone.
async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    url: &str,
    notices: &mpsc::UnboundedSender<Notice>,
) {
    let mut pause = None;
    let mut listened_before = false;
    loop {
        let ended = listen_once(config, tls, notices, listened_before).await;
        if notices.is_closed() {
            return;
        }
        match ended {
            Ok(()) => {
                tracing::warn!(%url, "job store: the connection that hears of new jobs closed; opening it again (the sweep finds what is missed)");
                pause = None;
                listened_before = true;
            }
            Err(Lost { listened, error }) => {
                if pause.is_none() {
                    tracing::warn!(%url, %error, "job store: cannot listen for new jobs; retrying with backoff (the sweep finds what is missed)");
                }
                listened_before |= listened;
                if listened {
                    pause = None;
                }
                let wait = next_pause(pause);
                pause = Some(wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Why a listening connection ended with an error, and whether it had listened.
struct Lost {
    listened: bool,
    error: tokio_postgres::Error,
}

/// One connection: connects, listens, and forwards notifications until the connection
/// ends (`Ok` when it closed without an error).
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    notices: &mpsc::UnboundedSender<Notice>,
    listened_before: bool,
) -> Result<(), Lost> {
    let lost = |listened| move |error| Lost { listened, error };
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(lost(false))?;
    // The connection must be polled for the client's statements to be answered: a task
    // of its own polls it and hands over what the server sends unasked.
    let (messages, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let end = !matches!(message, Some(Ok(_)));
            if messages.send(message).is_err() || end {
                return;
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(lost(false));
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    if listened_before {
        tracing::info!("job store: listening for new jobs again");
        let _ = notices.send(Notice::Resumed);
    }
    while let Some(message) = received.recv().await {
        match message {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                let ids = parse_ids(notification.payload());
                if !ids.is_empty() && notices.send(Notice::Queued(ids)).is_err() {
                    break;
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(message = notice.message(), "job store: Postgres notice");
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(lost(true)(error)),
            None => break,
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}

/// The ids of a notification's payload (comma-separated); anything else is logged and
/// skipped.
fn parse_ids(payload: &str) -> Vec<JobId> {
    payload
        .split(',')
        .filter_map(|id| match Uuid::parse_str(id) {
            Ok(uuid) => Some(JobId(uuid)),
            Err(e) => {
                tracing::warn!(payload = id, error = %e, "job store: a notification on {CHANNEL} holds no job id; ignored");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_comma_separated_ids() {
        let [a, b] = [JobId::generate(), JobId::generate()];
        assert_eq!(parse_ids(&format!("{a},{b}")), vec![a, b]);
        assert_eq!(parse_ids(&format!("{a},not-an-id")), vec![a]);
        assert_eq!(parse_ids(""), Vec::<JobId>::new());
    }
}
