//! The simulated prose: a stable hash of the prompt picks every word from a built-in lexicon, shaped into
//! sentences, paragraphs and now and then a code block.

use crate::GenerateRequest;

/// FNV-1a over roles and contents: stable across runs, platforms and Rust versions (unlike `DefaultHasher`).
pub(super) fn prompt_hash(request: &GenerateRequest) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in &request.messages {
        for b in m.role.bytes().chain([0u8]).chain(m.content.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// SplitMix64 of `seed` and `i`: the pseudo-random number behind token `i`.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const LEXICON: &[&str] = &[
    "the",
    "relay",
    "message",
    "stream",
    "team",
    "shared",
    "token",
    "response",
    "model",
    "context",
    "answer",
    "question",
    "plan",
    "launch",
    "review",
    "draft",
    "note",
    "idea",
    "system",
    "worker",
    "edge",
    "queue",
    "event",
    "sequence",
    "history",
    "viewer",
    "permission",
    "owner",
    "thread",
    "project",
    "deadline",
    "budget",
    "design",
    "feature",
    "release",
    "customer",
    "feedback",
    "metric",
    "latency",
    "throughput",
    "cache",
    "index",
    "schema",
    "query",
    "result",
    "summary",
    "detail",
    "example",
    "step",
    "option",
    "trade-off",
    "risk",
    "goal",
    "we",
    "you",
    "it",
    "they",
    "should",
    "could",
    "will",
    "can",
    "must",
    "might",
    "consider",
    "check",
    "build",
    "ship",
    "test",
    "measure",
    "compare",
    "improve",
    "explain",
    "write",
    "read",
    "keep",
    "start",
    "finish",
    "and",
    "or",
    "but",
    "so",
    "because",
    "with",
    "without",
    "for",
    "from",
    "into",
    "over",
    "under",
    "after",
    "before",
    "while",
    "then",
    "a",
    "an",
    "this",
    "that",
    "every",
    "each",
    "some",
    "more",
    "less",
    "first",
    "next",
    "last",
    "quick",
    "careful",
    "clear",
    "simple",
    "robust",
    "live",
    "durable",
    "fast",
    "small",
    "large",
    "early",
    "late",
    "new",
    "better",
];

/// Builds `count` tokens of prose for `seed`: capitalised sentences of 5–16 words, commas now and then,
/// paragraphs, and for about one prompt in four a short code block in the middle of a long enough answer.
pub(super) fn compose(seed: u64, count: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    let code_at = (seed.is_multiple_of(4) && count >= 40).then_some(count / 2);
    let mut sentence_len = 0u64;
    let mut sentence_target = 5 + mix(seed, u64::MAX) % 12;
    let mut sentences = 0u64;
    let mut capital = true;
    let mut i = 0usize;
    while out.len() < count {
        if Some(out.len()) == code_at {
            for line in code_block(seed) {
                if out.len() + 1 >= count {
                    break;
                }
                out.push(line);
            }
            out.push("```\n\n".to_owned());
            capital = true;
            sentence_len = 0;
            continue;
        }
        let r = mix(seed, i as u64);
        i += 1;
        let word = LEXICON[(r % LEXICON.len() as u64) as usize];
        let mut token = String::with_capacity(word.len() + 3);
        if out.is_empty() || capital && sentence_len == 0 && out.last().is_some_and(|t: &String| t.ends_with('\n')) {
            // Start of the text or of a paragraph: no leading space.
        } else {
            token.push(' ');
        }
        if capital {
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                token.extend(c.to_uppercase());
                token.push_str(chars.as_str());
            }
            capital = false;
        } else {
            token.push_str(word);
        }
        sentence_len += 1;
        let last = out.len() + 1 == count;
        if sentence_len >= sentence_target || last {
            token.push(if (r >> 40).is_multiple_of(7) { '?' } else { '.' });
            sentences += 1;
            sentence_len = 0;
            sentence_target = 5 + (r >> 20) % 12;
            capital = true;
            if !last && sentences.is_multiple_of(2 + (r >> 48) % 3) {
                token.push_str("\n\n");
            }
        } else if (r >> 32).is_multiple_of(9) && sentence_len > 2 {
            token.push(',');
        }
        out.push(token);
    }
    out
}

/// A few lines of plausible code; each line is one token.
fn code_block(seed: u64) -> Vec<String> {
    let w = |k: u64| LEXICON[(mix(seed, 1_000_000 + k) % LEXICON.len() as u64) as usize].replace('-', "_");
    vec![
        "\n\n```rust\n".to_owned(),
        format!("fn {}_{}(input: &str) -> usize {{\n", w(1), w(2)),
        format!("    let {} = input.len();\n", w(3)),
        format!("    {} * 2\n", w(3)),
        "}\n".to_owned(),
    ]
}
