//! One socket's life after the upgrade: its reader (`reader.rs`) and writer
//! (`writer.rs`) run in one task, sharing `Halves`; when both have stopped, the closing
//! handshake is completed and the socket's places are given back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chatbox_application::limits::ConnectionPermit;
use chatbox_application::ports::SocketSlot;
use chatbox_application::socket::{SocketBudget, SocketHandle};
use chatbox_application::wait::Dormant;
use chatbox_domain::{Seq, SessionId};
use futures::StreamExt;
use tokio::time::{Instant, timeout};
use tracing::{info, warn};

use crate::auth::AuthenticatedUser;
use crate::state::HttpState;
use crate::wire;

use super::halves::{CLOSE_TIMEOUT, Halves, ReadEnd, Socket};
use super::outgoing::Outgoing;
use super::reader::read_loop;
use super::writer::write_loop;

/// How long a socket closed for shutdown waits for the client's close frame.
const SHUTDOWN_CLOSE_WAIT: Duration = Duration::from_millis(250);

/// Serves one upgraded socket until it closes.
///
/// The setup runs before the future is made, and the future keeps only what serving
/// needs: an `async fn` would also keep a copy of every argument (the socket, the user)
/// for the socket's whole life, in every idle socket's task.
pub(super) fn serve(
    state: Arc<HttpState>,
    // Boxed: tungstenite's state lives as long as the socket, and inline it would put the
    // socket's task past its allocation size class (see `SOCKET_TASK_MAX_BYTES`).
    mut stream: Box<Socket>,
    outgoing: Outgoing,
    user: AuthenticatedUser,
    requested: Option<SessionId>,
    last_seq: Option<Seq>,
    // The socket's places, given back when it closes: this process's permit and, when
    // the replicas share a store, its slot across them.
    places: (ConnectionPermit, Option<SocketSlot>),
) -> impl Future<Output = ()> + Send {
    let budget = SocketBudget { max_bytes: state.config.send_buffer_bytes, encode: wire::encode };
    let (handle, queue) = SocketHandle::new(user.id.clone(), budget);
    let started = std::time::Instant::now();
    state.metrics.recorder.socket_opened();
    tracing::Span::current().record("socket_id", tracing::field::display(handle.id()));
    info!("socket connected");
    let is_admin = user.is_admin();
    let deadline = state.config.enforce_token_expiry.then(|| state.jwt.socket_deadline(&user)).flatten();
    // The deadline comes from a token: convert it without arithmetic that could
    // overflow (a deadline beyond the clock's range is no deadline at all).
    let expiry = deadline.and_then(|at| {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now().checked_add(left)
    });

    // Boxed, like every call into the use-cases below: their futures are large and
    // short-lived, and inline they would make every idle socket's task as large as the
    // largest of them. Made here, so the task keeps the box (freed once connected), not
    // the arguments it was made from.
    let connecting = {
        let (state, handle) = (Arc::clone(&state), Arc::clone(&handle));
        Box::pin(async move { state.chat.connect(handle, is_admin, requested, last_seq).await })
    };

    async move {
        let halves = Halves::new(Instant::now());
        // Connecting (which replays history on a resume) runs alongside the writer, so a
        // long replay is drained as it is queued rather than overflowing the socket's queue.
        let reader = async {
            let mut connection = match connecting.await {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%error, "connecting the socket failed");
                    handle.send(state.chat.error_frame(&error, None));
                    return halves.reader_stopped(ReadEnd::Internal);
                }
            };
            let end = read_loop(&state, &mut stream, &mut connection, &halves).await;
            state.chat.disconnect(connection);
            halves.reader_stopped(end);
        };
        let writer = write_loop(&state, outgoing, queue, &handle, expiry, &halves);
        // The writer wakes the task for every frame; the reader is polled only when it
        // woke the task itself (a frame from the client, the writer's end), not down to
        // the socket's readiness for each frame written.
        let ((), close) = tokio::join!(Dormant::new(reader), writer);
        let read_end = halves.read_end();
        if close.is_some() && !matches!(read_end, ReadEnd::ClientClosed | ReadEnd::Broken) {
            // The server closed a connection that still works: complete the closing
            // handshake, waiting briefly for the client's close frame, so the TCP
            // connection is not reset under frames the client has yet to read.
            // At shutdown the answers have had their time already: a client slow to
            // answer the close must not hold the process past its deadline.
            let wait = if state.shutdown.is_cancelled() { SHUTDOWN_CLOSE_WAIT } else { CLOSE_TIMEOUT };
            let _ = timeout(wait, async {
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        drop(places);
        state.metrics.recorder.socket_closed(started.elapsed());
        info!(
            seconds = started.elapsed().as_secs(),
            ?read_end,
            close_code = close.map(|c| u16::from(c.code)),
            "socket closed"
        );
    }
}
