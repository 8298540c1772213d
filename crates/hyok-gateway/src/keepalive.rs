//! Long answers kept alive the way S3 keeps them. A CompleteMultipartUpload of a large
//! object can take minutes (the backend assembles the parts, the staging object is copied
//! to its key), longer than clients wait for an answer (the aws cli and boto3: 60 s without
//! a byte). S3's answer to that: once it begins processing it sends `200 OK` and the XML
//! declaration, then white space every few seconds, then the result, or an `<Error>`
//! document whose code the SDKs act on as on an error status (they retry it when it is
//! retryable: botocore, the Go and Java SDKs all handle a "200 with an error" for this
//! operation).
//!
//! Here: the operation runs in its own task, so a client that goes away no longer cancels
//! it halfway. If it ends within `[gateway] keepalive_after` (default [`ANSWER_WITHIN`]), the answer is the ordinary one (with
//! the ordinary error statuses, which is how every quick refusal is answered: a wrong part
//! list, a missing upload, a failed precondition). Otherwise the handler answers at once
//! with a [`Pending`] in the response's extensions, and the server (`server.rs`) replaces
//! the body with [`body`]: the declaration, a space every [`SPACE_EVERY`], then the result.
//!
//! **Never at once** (`keepalive_after` is at least 1 s). The AWS SDK for Go v2 (smithy-go)
//! closes a request's body as soon as the answer's head arrives, and Go's `net/http` still
//! reads that body once more after sending it (to find a body longer than its length); the
//! read of the closed body fails, and `net/http` closes the connection under the answer
//! being read: "use of closed network connection" after the `200`, and the SDK aborts an
//! upload whose Complete succeeded. A head sent while the client's writer is still on its
//! way there loses that race; observed with the head sent the moment the request was read,
//! when the client's writer came 0.2-19 ms after the head (five times in 54 runs of the Go
//! client on a loaded machine). A second between the request and the head leaves that race
//! to clients stalled for a second.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use s3s::{S3Error, S3Result};
use tokio::sync::oneshot;

/// How long an operation may run before its answer's head is sent (`[gateway]
/// keepalive_after` when the configuration does not say).
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// The interval between two spaces while it runs.
pub(crate) const SPACE_EVERY: Duration = Duration::from_secs(2);

const DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// The result of an operation whose answer's head is already sent: its XML element (no
/// declaration) or the error to put in its place.
type Outcome = Result<Bytes, S3Error>;

/// In a response's extensions: the outcome still to come.
#[derive(Clone)]
pub(crate) struct Pending(Arc<Mutex<Option<oneshot::Receiver<Outcome>>>>);

/// What [`run`] gives back: the operation's own result, or a head to answer now.
pub(crate) enum Answer<T> {
    Done(S3Result<T>),
    Later(Pending),
}

/// Run `op` in its own task (it goes on if the client goes away); its result if it ends
/// within `within`, otherwise a [`Pending`] whose outcome is `xml` of the result.
pub(crate) async fn run<T, F>(
    op: F,
    within: Duration,
    xml: impl FnOnce(&T) -> S3Result<Bytes> + Send + 'static,
) -> Answer<T>
where
    T: Send + 'static,
    F: Future<Output = S3Result<T>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let res = op.await;
        // Nobody waits any more when the quick answer was already taken.
        if let Err(res) = tx.send(res) {
            return Some(res);
        }
        None
    });
    let mut rx = rx;
    match tokio::time::timeout(within, &mut rx).await {
        Ok(Ok(res)) => Answer::Done(res),
        Ok(Err(_)) => {
            let _ = task.await;
            Answer::Done(Err(lost()))
        }
        Err(_) => {
            let (out_tx, out_rx) = oneshot::channel();
            tokio::spawn(async move {
                let outcome = match rx.await {
                    Ok(res) => res.and_then(|v| xml(&v)),
                    Err(_) => {
                        let _ = task.await;
                        Err(lost())
                    }
                };
                let _ = out_tx.send(outcome);
            });
            Answer::Later(Pending(Arc::new(Mutex::new(Some(out_rx)))))
        }
    }
}

/// The error for an operation whose task ended without a result (it panicked).
fn lost() -> S3Error {
    s3s::s3_error!(InternalError, "the operation stopped unexpectedly; retry")
}

/// `val` as an XML element without the declaration (the body sent it first).
pub(crate) fn element<T: s3s::xml::Serialize>(val: &T) -> S3Result<Bytes> {
    let mut buf = Vec::with_capacity(256);
    let mut ser = s3s::xml::Serializer::new(&mut buf);
    val.serialize(&mut ser).map_err(S3Error::internal_error)?;
    Ok(Bytes::from(buf))
}

/// The body for a [`Pending`] answer: the declaration, then a space every [`SPACE_EVERY`]
/// until the outcome, then the outcome (an error carrying `request_id`). `None` if the
/// outcome was taken already.
pub(crate) fn body(p: &Pending, request_id: &str) -> Option<s3s::Body> {
    let rx = p.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SPACE_EVERY, SPACE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(s3s::Body::http_body(KeepAlive {
        state: State::Start,
        rx,
        tick,
        request_id: request_id.to_owned(),
    }))
}

enum State {
    Start,
    Waiting,
    Done,
}

struct KeepAlive {
    state: State,
    rx: oneshot::Receiver<Outcome>,
    tick: tokio::time::Interval,
    request_id: String,
}

impl KeepAlive {
    fn last(&self, outcome: Outcome) -> Bytes {
        match outcome {
            Ok(xml) => xml,
            Err(mut e) => {
                e.set_request_id(self.request_id.clone());
                element(&e).unwrap_or_else(|_| {
                    Bytes::from_static(b"<Error><Code>InternalError</Code></Error>")
                })
            }
        }
    }
}

impl hyper::body::Body for KeepAlive {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match this.state {
            State::Start => {
                this.state = State::Waiting;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DECL)))))
            }
            State::Waiting => {
                if let Poll::Ready(res) = Pin::new(&mut this.rx).poll(cx) {
                    this.state = State::Done;
                    let outcome = res.unwrap_or_else(|_| Err(lost()));
                    return Poll::Ready(Some(Ok(Frame::data(this.last(outcome)))));
                }
                match this.tick.poll_tick(cx) {
                    Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" "))))),
                    Poll::Pending => Poll::Pending,
                }
            }
            State::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn read_all(b: s3s::Body) -> Vec<u8> {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    /// The head after 2 s (the default is longer; the tests' operations take 3-10 s).
    const WITHIN: Duration = Duration::from_secs(2);

    fn xml_of(v: &u32) -> S3Result<Bytes> {
        Ok(Bytes::from(format!("<N>{v}</N>")))
    }

    #[tokio::test]
    async fn a_quick_operation_gets_its_own_answer() {
        let a = run(async { Ok(7u32) }, Duration::from_secs(5), xml_of).await;
        assert!(matches!(a, Answer::Done(Ok(7))));
        let a = run(
            async { Err::<u32, _>(s3s::s3_error!(InvalidPart)) },
            Duration::from_secs(5),
            xml_of,
        )
        .await;
        let Answer::Done(Err(e)) = a else {
            panic!("an error answered as it is");
        };
        assert_eq!(*e.code(), s3s::S3ErrorCode::InvalidPart);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_operation_is_kept_alive_then_answered() {
        let op = async {
            tokio::time::sleep(Duration::from_secs(7)).await;
            Ok(42u32)
        };
        let Answer::Later(p) = run(op, WITHIN, xml_of).await else {
            panic!("a long operation answers later");
        };
        let b = body(&p, "REQ1").expect("a body");
        assert!(body(&p, "REQ1").is_none(), "the outcome is taken once");
        let text = String::from_utf8(read_all(b).await).unwrap();
        let rest = text
            .strip_prefix(std::str::from_utf8(DECL).unwrap())
            .unwrap();
        let spaces = rest.len() - rest.trim_start().len();
        // 7 s of work, 2 s before the head, a space every 2 s after it.
        assert_eq!(spaces, 2, "{text:?}");
        assert_eq!(rest.trim_start(), "<N>42</N>");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_error_is_an_error_document_with_the_request_id() {
        let op = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Err::<u32, _>(s3s::s3_error!(InternalError, "the backend failed"))
        };
        let Answer::Later(p) = run(op, WITHIN, xml_of).await else {
            panic!("a long operation answers later");
        };
        let text = String::from_utf8(read_all(body(&p, "REQ2").unwrap()).await).unwrap();
        assert!(text.starts_with("<?xml"), "{text:?}");
        let doc = text[DECL.len()..].trim_start();
        assert!(
            doc.starts_with("<Error><Code>InternalError</Code>"),
            "{doc:?}"
        );
        assert!(doc.contains("<RequestId>REQ2</RequestId>"), "{doc:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_operation_goes_on_when_the_client_goes_away() {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let op = async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(1u32)
        };
        let Answer::Later(p) = run(op, WITHIN, xml_of).await else {
            panic!("a long operation answers later");
        };
        drop(body(&p, "REQ3"));
        drop(p);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
