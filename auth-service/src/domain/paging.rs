//! Pages of a listing: how many rows a page holds, and the opaque `page_token` that continues a
//! listing where the previous page ended. A token is the position of the previous page's last
//! row (keyset pagination: `(created_at, id)`, see `ports::Keyset`), so rows added or deleted
//! between pages neither repeat nor vanish. It is not a secret and grants nothing: every page is
//! checked like the first, so a forged token only moves where the caller's own listing starts.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{AuthError, Timestamp, ports::Keyset};

/// Which listing a token belongs to (a token of one is refused by another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// `ListUsers`: 50 accounts a page unless asked, at most 500.
    Users,
    /// `ListSessions`, `ListUserSessions`: 100 sessions a page unless asked (more than the
    /// default per-user cap of 10 live sessions, so a client that sends no page size still
    /// gets every session in one page), at most 1000.
    Sessions,
}

impl Listing {
    fn tag(self) -> char {
        match self {
            Listing::Users => 'u',
            Listing::Sessions => 's',
        }
    }

    pub fn default_size(self) -> u32 {
        match self {
            Listing::Users => 50,
            Listing::Sessions => 100,
        }
    }

    pub fn max_size(self) -> u32 {
        match self {
            Listing::Users => 500,
            Listing::Sessions => 1000,
        }
    }
}

/// One page of a listing, and the token of the next (empty after the last page).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// A request for one page: its size (0 = the default; capped at the maximum) and where it
/// starts (after the row a token names; the beginning for an empty token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub after: Option<Keyset>,
}

impl PageRequest {
    pub fn parse(listing: Listing, size: u32, token: &str) -> Result<Self, AuthError> {
        let size = match size {
            0 => listing.default_size(),
            size => size.min(listing.max_size()),
        };
        let after = if token.is_empty() {
            None
        } else {
            Some(decode(listing, token).ok_or(AuthError::InvalidArgument(
                "page_token is not a token this listing returned",
            ))?)
        };
        Ok(Self { size, after })
    }

    /// How many rows to ask the store for: one more than the page, to learn whether another
    /// page follows without a second query.
    pub fn fetch_limit(&self) -> u32 {
        self.size.saturating_add(1)
    }

    /// [`Self::finish`], as a [`Page`].
    pub fn page<T>(
        &self,
        listing: Listing,
        mut rows: Vec<T>,
        position: impl Fn(&T) -> Keyset,
    ) -> Page<T> {
        let next_page_token = self.finish(listing, &mut rows, position);
        Page {
            items: rows,
            next_page_token,
        }
    }

    /// Cuts `rows` (fetched with [`Self::fetch_limit`]) to the page, and returns the token of
    /// the next page: empty when this page is the last.
    pub fn finish<T>(
        &self,
        listing: Listing,
        rows: &mut Vec<T>,
        position: impl Fn(&T) -> Keyset,
    ) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() <= size {
            return String::new();
        }
        rows.truncate(size);
        rows.last()
            .map(|last| encode(listing, &position(last)))
            .unwrap_or_default()
    }
}

fn encode(listing: Listing, at: &Keyset) -> String {
    let text = format!("{}{}:{}", listing.tag(), at.created_at.millis(), at.id);
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(listing: Listing, token: &str) -> Option<Keyset> {
    if token.len() > 256 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(listing.tag())?;
    let (millis, id) = rest.split_once(':')?;
    if !super::opaque_token::is_identifier(id) {
        return None;
    }
    Some(Keyset {
        created_at: Timestamp::from_millis(millis.parse().ok()?),
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64, id: &str) -> Keyset {
        Keyset {
            created_at: Timestamp::from_millis(millis),
            id: id.into(),
        }
    }

    #[test]
    fn a_page_token_round_trips_and_belongs_to_its_listing() -> Result<(), AuthError> {
        let page = PageRequest::parse(Listing::Users, 2, "")?;
        let mut rows = vec![at(1, "a"), at(2, "b"), at(3, "c")];
        let token = page.finish(Listing::Users, &mut rows, Clone::clone);
        assert_eq!(rows.len(), 2);
        let next = PageRequest::parse(Listing::Users, 2, &token)?;
        assert_eq!(next.after, Some(at(2, "b")));
        assert!(PageRequest::parse(Listing::Sessions, 2, &token).is_err());
        assert!(PageRequest::parse(Listing::Users, 2, "garbage!").is_err());
        // The last page has no next token.
        let mut last = vec![at(3, "c")];
        assert_eq!(next.finish(Listing::Users, &mut last, Clone::clone), "");
        Ok(())
    }

    #[test]
    fn sizes_default_and_are_capped() -> Result<(), AuthError> {
        assert_eq!(PageRequest::parse(Listing::Users, 0, "")?.size, 50);
        assert_eq!(PageRequest::parse(Listing::Users, 10_000, "")?.size, 500);
        assert_eq!(PageRequest::parse(Listing::Sessions, 0, "")?.size, 100);
        assert_eq!(
            PageRequest::parse(Listing::Sessions, 10_000, "")?.size,
            1000
        );
        Ok(())
    }
}
