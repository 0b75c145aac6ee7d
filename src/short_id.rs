//! Session ids as lists print them: the first eight characters, or as many more as it takes to
//! tell the id from every other one known, as git abbreviates commit ids. An id a list shows,
//! and a command a list suggests (`chasm restore 9c2d4e6f --push`), can then be typed back: a
//! prefix two sessions share is refused.

/// The fewest characters shown.
pub const MIN: usize = 8;

/// `id`'s first `len` characters (all of it when it is shorter).
pub fn cut(id: &str, len: usize) -> &str {
    id.char_indices().nth(len).map_or(id, |(at, _)| &id[..at])
}

/// How many characters of `id` tell it from each of `others` (at least [`MIN`]): one more than
/// the longest prefix it shares with any. Its neighbours in id order are all it needs: no other
/// id shares a longer prefix with it than they do.
pub fn len_among<'a>(id: &str, others: impl IntoIterator<Item = &'a str>) -> usize {
    others
        .into_iter()
        .filter(|other| *other != id)
        .map(|other| id.chars().zip(other.chars()).take_while(|(a, b)| a == b).count() + 1)
        .fold(MIN, usize::max)
}

/// The short form of each id of a sorted list, told from all the others.
pub fn of_sorted<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    (0..ids.len())
        .map(|at| {
            let around = [at.checked_sub(1), Some(at + 1)].into_iter().flatten().filter_map(|i| ids.get(i).copied());
            cut(ids[at], len_among(ids[at], around))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_cut_to_eight_characters_or_as_many_as_tell_them_apart() {
        let ids =
            ["9c2d4e6f-8a0b", "9c2d4e6f-8a1c", "9c2d4e70-0000", "ab", "abcdefgh", "abcdefghij", "é".repeat(10).leak()];
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let short = of_sorted(&sorted);
        let of = |id: &str| short[sorted.iter().position(|s| *s == id).unwrap()];
        assert_eq!(of("9c2d4e6f-8a0b"), "9c2d4e6f-8a0");
        assert_eq!(of("9c2d4e6f-8a1c"), "9c2d4e6f-8a1");
        assert_eq!(of("9c2d4e70-0000"), "9c2d4e70");
        assert_eq!(of("ab"), "ab");
        // A whole id that begins another is shown whole: it resolves to itself.
        assert_eq!(of("abcdefgh"), "abcdefgh");
        assert_eq!(of("abcdefghij"), "abcdefghi");
        assert_eq!(of(&"é".repeat(10)), "é".repeat(8));
    }

    proptest! {
        /// Each short form begins its own id and no other, unless it is that id whole.
        #[test]
        fn a_short_form_names_its_session_alone(ids in prop::collection::btree_set("[ab]{1,12}", 1..40)) {
            let sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
            for (id, short) in sorted.iter().zip(of_sorted(&sorted)) {
                prop_assert!(id.starts_with(short));
                prop_assert!(short.chars().count() >= MIN.min(id.chars().count()));
                let others: Vec<&&str> = sorted.iter().filter(|o| *o != id && o.starts_with(short)).collect();
                prop_assert!(others.is_empty() || short == *id, "{} names {:?} too", short, others);
            }
        }
    }
}
