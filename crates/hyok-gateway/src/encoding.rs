//! `encoding-type=url` in listings: the keys, prefixes, delimiter and markers of the answer
//! percent-encoded, and `EncodingType: url` in it, as S3 answers. Clients ask for it so that
//! any key survives XML: botocore (aws cli, boto3) asks on every listing and decodes the
//! answer only when it says `EncodingType: url`; rclone can ask and then always decodes, so
//! an answer that ignored the request turned a `+` in a key into a space there.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::EncodingType;
use s3s::{s3_error, S3Result};

/// Bytes left as they are: RFC 3986's unreserved characters and `/`.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Whether a listing's answer is URL-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoding {
    url: bool,
}

impl Encoding {
    /// The encoding a request asked for: none or `url` (anything else is InvalidArgument,
    /// as on S3).
    pub(crate) fn of(asked: Option<&EncodingType>) -> S3Result<Self> {
        match asked.map(EncodingType::as_str) {
            None => Ok(Self { url: false }),
            Some(EncodingType::URL) => Ok(Self { url: true }),
            Some(_) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request (only url is)"
            )),
        }
    }

    /// A key, prefix, delimiter or marker as the answer carries it.
    pub(crate) fn apply(self, s: String) -> String {
        if self.url {
            utf8_percent_encode(&s, ENCODED).to_string()
        } else {
            s
        }
    }

    /// [`Encoding::apply`] of an optional element.
    pub(crate) fn opt(self, s: Option<String>) -> Option<String> {
        s.map(|s| self.apply(s))
    }

    /// The answer's `EncodingType` element.
    pub(crate) fn answer(self) -> Option<EncodingType> {
        self.url
            .then(|| EncodingType::from_static(EncodingType::URL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_unreserved_characters_and_slashes() {
        let e = Encoding::of(Some(&EncodingType::from_static("url"))).unwrap();
        assert_eq!(e.apply("foo+1/bar".into()), "foo%2B1/bar");
        assert_eq!(e.apply("quux ab/".into()), "quux%20ab/");
        assert_eq!(e.apply("a-b_c.d~e/f".into()), "a-b_c.d~e/f");
        assert_eq!(e.apply("100%/é".into()), "100%25/%C3%A9");
        assert_eq!(e.answer().as_ref().map(EncodingType::as_str), Some("url"));
    }

    #[test]
    fn no_encoding_leaves_everything_and_others_are_refused() {
        let e = Encoding::of(None).unwrap();
        assert_eq!(e.apply("foo+1 /bar".into()), "foo+1 /bar");
        assert!(e.answer().is_none());
        assert!(Encoding::of(Some(&EncodingType::from_static("base64"))).is_err());
    }
}
