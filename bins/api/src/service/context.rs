//! The context of a generation job, capped by bytes: a job must fit in one NATS message (the server's
//! `max_payload`, 1 MiB by default), or every send in a long conversation would fail. The system prompt and the
//! new message always go; earlier turns fill what is left, newest first, so the oldest are dropped.

use rh_protocol::rpc::ChatMessage;

/// Room left in a NATS message for the job's other fields, its JSON framing and headers.
pub const JOB_ROOM: usize = 16 * 1024;

/// The bytes `m` takes in the job's JSON (escapes included), plus its separating comma.
fn json_size(m: &ChatMessage) -> usize {
    serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX) + 1
}

/// `system` (if any), then as many of the `earlier` turns (oldest first) as fit in `budget` bytes with the rest,
/// taken from the newest, then `new`.
pub fn fit(
    system: Option<ChatMessage>,
    earlier: Vec<ChatMessage>,
    new: ChatMessage,
    budget: usize,
) -> Vec<ChatMessage> {
    let mut used = system.as_ref().map_or(0, json_size) + json_size(&new);
    let mut fitting = 0;
    for m in earlier.iter().rev() {
        used = used.saturating_add(json_size(m));
        if used > budget {
            break;
        }
        fitting += 1;
    }
    let dropped = earlier.len() - fitting;
    let mut context = Vec::with_capacity(fitting + 2);
    context.extend(system);
    context.extend(earlier.into_iter().skip(dropped));
    context.push(new);
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    fn size(ms: &[ChatMessage]) -> usize {
        serde_json::to_vec(ms).unwrap().len()
    }

    #[test]
    fn the_oldest_turns_go_first_and_the_ends_always_stay() {
        let earlier: Vec<_> = (0..10).map(|i| msg("user", &format!("{i}{}", "x".repeat(99)))).collect();
        let turn = json_size(&earlier[0]);
        let system = msg("system", "be brief");
        let new = msg("user", "now");
        let ends = json_size(&system) + json_size(&new);

        let all = fit(Some(system.clone()), earlier.clone(), new.clone(), usize::MAX);
        assert_eq!(all.len(), 12);
        let three = fit(Some(system.clone()), earlier.clone(), new.clone(), ends + 3 * turn);
        let kept: Vec<_> = three.iter().map(|m| m.content.chars().next().unwrap()).collect();
        assert_eq!(kept, ['b', '7', '8', '9', 'n'], "the three newest turns between the ends");
        assert!(size(&three) <= ends + 3 * turn + 2);
        let none = fit(Some(system.clone()), earlier.clone(), new.clone(), 0);
        assert_eq!(none, [system, new.clone()]);
        assert_eq!(fit(None, earlier, new.clone(), 0), [new]);
    }

    #[test]
    fn escapes_count() {
        // A control character takes six bytes in JSON.
        let earlier = vec![msg("user", &"\u{1}".repeat(100))];
        let new = msg("user", "n");
        assert_eq!(fit(None, earlier.clone(), new.clone(), json_size(&new) + 300).len(), 1);
        let room = json_size(&new) + 700;
        assert_eq!(fit(None, earlier, new, room).len(), 2);
    }
}
