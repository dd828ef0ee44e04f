//! Shutdown: answers may finish until the deadline, then the running ones are
//! cancelled and stored.

use std::time::Duration;

use chatbox_application::events::ServerEvent;
use chatbox_domain::{FinishReason, Seq};

use crate::support::{Step, done_of, harness};

#[tokio::test(start_paused = true)]
async fn at_the_shutdown_deadline_running_answers_are_cancelled_and_stored() {
    let h = harness();
    h.provider.push(vec![Step::Say("half an answer"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    h.service.begin_shutdown();
    assert!(
        client.next_within(Duration::from_millis(200)).await.is_none(),
        "answers may finish before the deadline"
    );
    h.service.cancel_running_answers();
    let events = client.until_done().await;
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Cancelled));
    assert_eq!(h.stored(&client.session_id()).await[1].content, "half an answer");
}
