use super::has_control;

/// Trims `s` and checks it is 1..=`max` characters without control characters.
fn short_text(what: &str, s: &str, max: usize) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("{what} is required"));
    }
    if s.chars().count() > max {
        return Err(format!("{what} must have at most {max} characters"));
    }
    if has_control(s) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// A person's display name: 1 to 100 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(s: &str) -> Result<Self, String> {
        short_text("name", s, 100).map(PersonName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's name: 1 to 100 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(s: &str) -> Result<Self, String> {
        short_text("org_name", s, 100).map(OrgName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A team's name: 1 to 80 characters, one line (unique in its org, case-insensitively: the database says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamName(String);

impl TeamName {
    pub fn parse(s: &str) -> Result<Self, String> {
        short_text("name", s, 80).map(TeamName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A conversation title: 1 to 200 characters, one line; absent or blank becomes "New conversation".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const DEFAULT: &'static str = "New conversation";

    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s.map(str::trim) {
            None | Some("") => Ok(Title(Self::DEFAULT.to_owned())),
            Some(s) => short_text("title", s, 200).map(Title),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Longest title made from a first message ([`Title::from_message`]).
    pub const FROM_MESSAGE_CHARS: usize = 60;

    /// A title for an untitled conversation from its first message: the first line that says something (not the
    /// simulated AI's `/sim …` line), without markdown's leading `#`, `>` or list marks, whitespace collapsed, cut
    /// at a word to [`Self::FROM_MESSAGE_CHARS`] with "…". `None` when no line says anything.
    pub fn from_message(text: &str) -> Option<Title> {
        let line = text
            .lines()
            .map(|l| l.trim().trim_start_matches(['#', '>', '-', '*', ' ']).trim())
            .find(|l| !l.is_empty() && !l.starts_with("/sim") && !l.starts_with("```"))?;
        let words: Vec<&str> = line.split_whitespace().filter(|w| !w.chars().any(char::is_control)).collect();
        let mut title = String::new();
        for word in &words {
            let len = title.chars().count() + usize::from(!title.is_empty()) + word.chars().count();
            if len > Self::FROM_MESSAGE_CHARS {
                if title.is_empty() {
                    title = word.chars().take(Self::FROM_MESSAGE_CHARS).collect();
                }
                title.push('…');
                return Some(Title(title));
            }
            if !title.is_empty() {
                title.push(' ');
            }
            title.push_str(word);
        }
        (!title.is_empty()).then_some(Title(title))
    }
}

/// A message to the AI: not blank, at most 32 000 characters, no NUL (PostgreSQL text cannot hold it).
/// Newlines are kept (the simulated provider reads a `/sim ...` first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub const MAX_CHARS: usize = 32_000;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("text is required".into());
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!("text must have at most {} characters", Self::MAX_CHARS));
        }
        if s.contains('\0') {
            return Err("text must not contain NUL characters".into());
        }
        Ok(MessageText(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_from_a_first_message() {
        let t = |s: &str| Title::from_message(s).map(|t| t.as_str().to_owned());
        assert_eq!(t("/sim tokens=5\n\n## Plan the   launch\nmore"), Some("Plan the launch".into()));
        assert_eq!(
            t("Write a migration plan for moving the billing service to the new cluster next week"),
            Some("Write a migration plan for moving the billing service to the…".into())
        );
        assert_eq!(t(&"x".repeat(100)).map(|s| s.chars().count()), Some(61));
        assert_eq!(t("/sim tokens=5\n  \n"), None);
        assert_eq!(t("- مرحبا بالفريق"), Some("مرحبا بالفريق".into()));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse("  ").is_err());
        assert!(PersonName::parse("a\nb").is_err());
        assert!(OrgName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn titles_default_when_blank() {
        assert_eq!(Title::parse(None).unwrap().as_str(), Title::DEFAULT);
        assert_eq!(Title::parse(Some("  ")).unwrap().as_str(), Title::DEFAULT);
        assert_eq!(Title::parse(Some(" Plans ")).unwrap().as_str(), "Plans");
        assert!(Title::parse(Some(&"t".repeat(201))).is_err());
    }

    #[test]
    fn message_text_rules() {
        assert!(MessageText::parse(" \n ").is_err());
        assert!(MessageText::parse("a\0b").is_err());
        assert_eq!(MessageText::parse("/sim tokens=3\nhi").unwrap().as_str(), "/sim tokens=3\nhi");
        assert!(MessageText::parse(&"x".repeat(MessageText::MAX_CHARS + 1)).is_err());
    }
}
