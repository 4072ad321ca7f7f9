//! What a monitor page sends over its live WebSocket (JSON text frames), decoded strictly:
//! an unknown field, type or an oversized list is refused with a message rather than half
//! understood. Pure (fuzzed through `fuzz/entries`).

use serde::Deserialize;

/// Variables one page may follow at once (a screenful of rows plus the pinned trends).
pub const MAX_VARS_PER_PAGE: usize = 256;
/// Longest frame a page may send (a watch list of 256 indices is ~2.5 KiB).
pub const MAX_FRAME: usize = 16 * 1024;

/// One message from a page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: the access token (a browser cannot put it in a WebSocket's
    /// headers, and it never travels in a URL, where logs and the history would keep it).
    Auth { token: String },
    /// What the page shows now; replaces the previous selection.
    Watch(Watch),
}

/// A page's selection: variables by flat debug index, whether it shows the latency
/// histogram, and the runtime log from which entry on (none: it does not follow the log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    #[serde(default)]
    pub vars: Vec<u32>,
    #[serde(default)]
    pub histogram: bool,
    #[serde(default)]
    pub logs_from: Option<u64>,
}

/// Why a frame was refused (sent back as `{"t":"error","msg":…}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("not a monitor message: {0}")]
    Malformed(String),
    #[error("at most {MAX_VARS_PER_PAGE} variables per page ({0} asked)")]
    TooManyVars(usize),
}

/// Decodes one text frame; a watch list comes back sorted and without duplicates.
pub fn parse(text: &str) -> Result<ClientMessage, MessageError> {
    if text.len() > MAX_FRAME {
        return Err(MessageError::TooLarge(text.len()));
    }
    let mut msg: ClientMessage = serde_json::from_str(text).map_err(|e| {
        let mut why = e.to_string();
        // The message may quote the frame: cut between characters, never inside one.
        let cut = (0..=why.len().min(120)).rev().find(|&i| why.is_char_boundary(i)).unwrap_or(0);
        why.truncate(cut);
        MessageError::Malformed(why)
    })?;
    if let ClientMessage::Watch(w) = &mut msg {
        w.vars.sort_unstable();
        w.vars.dedup();
        if w.vars.len() > MAX_VARS_PER_PAGE {
            return Err(MessageError::TooManyVars(w.vars.len()));
        }
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_quoting_multibyte_text_is_cut_between_characters() {
        // Found by the fuzzer: serde's message quotes the unknown tag, and byte 120 fell
        // inside a two-byte character.
        let frame = format!(r#"{{"t":"aut{}"}}"#, "ù".repeat(80));
        match parse(&frame) {
            Err(MessageError::Malformed(why)) => {
                assert!(why.len() <= 120 && why.starts_with("unknown variant"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_decode_strictly() {
        assert_eq!(parse(r#"{"t":"auth","token":"abc"}"#), Ok(ClientMessage::Auth { token: "abc".into() }));
        assert_eq!(
            parse(r#"{"t":"watch","vars":[3,1,3],"histogram":true,"logs_from":7}"#),
            Ok(ClientMessage::Watch(Watch { vars: vec![1, 3], histogram: true, logs_from: Some(7) }))
        );
        assert_eq!(parse(r#"{"t":"watch"}"#), Ok(ClientMessage::Watch(Watch::default())));
        assert!(matches!(parse(r#"{"t":"auth","token":"a","x":1}"#), Err(MessageError::Malformed(_))));
        assert!(matches!(parse(r#"{"t":"force"}"#), Err(MessageError::Malformed(_))));
        assert!(matches!(parse(r#"{"t":"watch","vars":[-1]}"#), Err(MessageError::Malformed(_))));
        assert!(matches!(parse("[]"), Err(MessageError::Malformed(_))));
        let many: Vec<u32> = (0..300).collect();
        let text = serde_json::json!({"t": "watch", "vars": many}).to_string();
        assert_eq!(parse(&text), Err(MessageError::TooManyVars(300)));
        assert_eq!(parse(&" ".repeat(MAX_FRAME + 1)), Err(MessageError::TooLarge(MAX_FRAME + 1)));
    }
}
