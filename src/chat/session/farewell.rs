//! What a session says last, before its close frame, and the evidence it keeps on the way: a
//! reporter is told `reported` once its report is stored; a visitor whose chat ended (it left,
//! or its partner did) is told `ended`.

use super::{Client, End};
use crate::chat::link::PartnerLink;
use crate::chat::protocol::{Author, ServerFrame};

/// The frame to write before the close, if any. Files a live chat's report on a blocking
/// thread first (never on the relay path), so that `reported` means stored.
pub(super) async fn last_frame(client: &Client, end: &End) -> Option<String> {
    match end {
        End::Reported(report) => {
            let moderation = client.moderation.clone();
            let report = (**report).clone();
            let filed = tokio::task::spawn_blocking(move || moderation.file_report(&report)).await;
            match filed {
                Ok(Ok(_)) => Some(ServerFrame::Reported.to_json()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot store a report");
                    Some(unstored(client))
                }
                Err(_) => Some(unstored(client)),
            }
        }
        End::Left | End::PartnerGone(_) => {
            // With its chat's evidence sealed, so that the page can still report the partner.
            let report = client.partner.as_ref().and_then(|partner| {
                let evidence = partner.evidence_for(client.id);
                (client.moderation).seal_for_later(partner.who(), client.who.visitor, evidence)
            });
            Some(
                ServerFrame::Ended {
                    report: report.map(Into::into),
                }
                .to_json(),
            )
        }
        _ => None,
    }
}

fn unstored(client: &Client) -> String {
    client.hub.metrics().error_sent("unavailable");
    ServerFrame::error(
        "unavailable",
        "The report could not be stored right now; please try again later.",
    )
    .to_json()
}

/// Keeps a message frame that came from a partner on another process for the evidence (the
/// receipts of our own messages come this way too, and were kept when sent).
pub(super) fn record_incoming(partner: &PartnerLink, frame: &str) {
    if !frame.starts_with(r#"{"type":"message""#) {
        return;
    }
    if let Ok(ServerFrame::Message {
        message,
        from: Author::Guest,
    }) = serde_json::from_str(frame)
    {
        partner.record(partner.partner(), &message);
    }
}
