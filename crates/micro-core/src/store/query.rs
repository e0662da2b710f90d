//! The filtering every backend applies, as pure logic over keys already in ascending order.

use super::{Order, Query};

/// The keys `query` selects from `keys` (ascending, as a B-tree yields them): prefix and suffix
/// filters, then order, then offset, then limit.
pub fn select<'a, K>(keys: impl DoubleEndedIterator<Item = K>, query: &Query) -> Vec<K>
where
    K: AsRef<str> + 'a,
{
    let keep = |k: &K| {
        let k = k.as_ref();
        query.prefix.as_deref().is_none_or(|p| k.starts_with(p))
            && query.suffix.as_deref().is_none_or(|s| k.ends_with(s))
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    match query.order {
        Order::Asc => keys.filter(keep).skip(query.offset).take(limit).collect(),
        Order::Desc => keys
            .rev()
            .filter(keep)
            .skip(query.offset)
            .take(limit)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(
        prefix: Option<&str>,
        suffix: Option<&str>,
        offset: usize,
        limit: Option<usize>,
        order: Order,
    ) -> Query {
        Query {
            prefix: prefix.map(str::to_owned),
            suffix: suffix.map(str::to_owned),
            offset,
            limit,
            order,
        }
    }

    #[test]
    fn filters_then_order_then_offset_then_limit() {
        let keys = ["a1", "a2", "a3", "b1", "b2"];
        assert_eq!(
            select(keys.iter(), &q(Some("a"), None, 0, None, Order::Asc)),
            [&"a1", &"a2", &"a3"]
        );
        assert_eq!(
            select(keys.iter(), &q(None, Some("1"), 0, None, Order::Asc)),
            [&"a1", &"b1"]
        );
        assert_eq!(
            select(keys.iter(), &q(Some("a"), Some("2"), 0, None, Order::Asc)),
            [&"a2"]
        );
        assert_eq!(
            select(keys.iter(), &q(Some("a"), None, 1, Some(1), Order::Asc)),
            [&"a2"]
        );
        assert_eq!(
            select(keys.iter(), &q(None, None, 1, Some(2), Order::Desc)),
            [&"b1", &"a3"]
        );
        assert!(select(keys.iter(), &q(Some("z"), None, 0, None, Order::Asc)).is_empty());
    }
}
