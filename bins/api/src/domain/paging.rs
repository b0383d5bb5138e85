//! Paging of lists: a page size and an opaque cursor naming where the previous page ended.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How many items a page holds: 1 to [`PageLimit::MAX`], [`PageLimit::DEFAULT`] when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

impl PageLimit {
    pub const MAX: u16 = 500;
    pub const DEFAULT: u16 = 500;

    pub fn parse(limit: Option<i64>) -> Result<Self, String> {
        match limit {
            None => Ok(PageLimit(Self::DEFAULT)),
            Some(n) if (1..=i64::from(Self::MAX)).contains(&n) => Ok(PageLimit(n as u16)),
            Some(n) => Err(format!("limit must be between 1 and {}, not {n}", Self::MAX)),
        }
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

/// Which turns of a conversation's history `GET /conversations/{id}` returns: the newest `limit` (1 to
/// [`HistoryPage::MAX`], [`HistoryPage::DEFAULT`] when not given), older than the seq `before` when given.
pub struct HistoryPage;

impl HistoryPage {
    pub const MAX: i64 = 500;
    pub const DEFAULT: i64 = 100;

    pub fn parse(limit: Option<i64>, before: Option<i64>) -> Result<rh_store::history::Page, String> {
        let limit = match limit {
            None => Self::DEFAULT,
            Some(n) if (1..=Self::MAX).contains(&n) => n,
            Some(n) => return Err(format!("limit must be between 1 and {}, not {n}", Self::MAX)),
        };
        if let Some(b) = before.filter(|b| *b < 1) {
            return Err(format!("before must be the seq of a message (at least 1), not {b}"));
        }
        Ok(rh_store::history::Page { limit: Some(limit), before })
    }
}

/// Where a page of newest-first items ended: the last item's creation time and id. Shown to clients as an opaque
/// string (`<unix microseconds>_<id>`) they send back as `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl PageCursor {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a page cursor (use the next_before of the previous page)");
        let (micros, id) = s.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(PageCursor { created_at, id })
    }

    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_refused() {
        let c = PageCursor {
            created_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(PageCursor::parse(&c.encode()), Ok(c));
        for bad in ["", "123", "x_y", "123_not-a-uuid", &format!("abc_{}", c.id)] {
            assert!(PageCursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn history_pages_are_bounded() {
        let page = HistoryPage::parse(None, None).unwrap();
        assert_eq!((page.limit, page.before), (Some(HistoryPage::DEFAULT), None));
        assert_eq!(HistoryPage::parse(Some(5), Some(9)).unwrap().before, Some(9));
        for (limit, before) in [(Some(0), None), (Some(501), None), (None, Some(0)), (None, Some(-3))] {
            assert!(HistoryPage::parse(limit, before).is_err(), "{limit:?} {before:?}");
        }
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(PageLimit::parse(None).map(PageLimit::get), Ok(i64::from(PageLimit::DEFAULT)));
        assert_eq!(PageLimit::parse(Some(1)).map(PageLimit::get), Ok(1));
        assert!(PageLimit::parse(Some(0)).is_err());
        assert!(PageLimit::parse(Some(501)).is_err());
    }
}
