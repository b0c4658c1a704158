//! Canonical JSON (RFC 8785, JCS) written straight from `Serialize` types: object members sorted
//! by key, no whitespace, strings escaped as JCS (and serde_json) escape them.
//!
//! It writes into one buffer. An object's members are written as they come, each `"key":value`
//! remembered as a range of the buffer; when the object ends its members are put in key order
//! in place (a nested object is already in order by then, and its length does not change). No
//! intermediate `serde_json::Value` is built.
//!
//! Scope: keys must be printable ASCII without `"` or `\` (every key the ledger writes is a
//! field name), where JCS's UTF-16 order is byte order; numbers must be integers (written
//! exactly, as serde_json writes them); floats are refused. Within that scope the bytes equal
//! serde_json's serialization of the value's `serde_json::Value`.

use serde::ser::{self, Serialize};

/// Why a value has no canonical encoding here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("canonical JSON: {0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The canonical JSON bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    value.serialize(Writer(&mut out))?;
    Ok(out)
}

/// Writes one value at the end of the buffer.
struct Writer<'a>(&'a mut Vec<u8>);

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `"key":` after checking that the key is in this module's scope.
fn write_key(out: &mut Vec<u8>, key: &str) -> Result<(), Error> {
    if !key
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(Error(format!(
            "object key {key:?} is not printable ASCII without quotes or backslashes"
        )));
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    Ok(())
}

/// Serializer methods writing integers in decimal, as serde_json does.
macro_rules! write_decimal {
    ($($method:ident: $int:ty),* $(,)?) => {
        $(fn $method(self, v: $int) -> Result<(), Error> {
            write_int(self.0, v);
            Ok(())
        })*
    };
}

/// [`KeyText`] methods taking an integer key as its decimal text.
macro_rules! key_as_decimal {
    ($($method:ident: $int:ty),* $(,)?) => {
        $(fn $method(self, v: $int) -> Result<String, Error> {
            Ok(v.to_string())
        })*
    };
}

/// [`KeyText`] methods refusing a key of their type.
macro_rules! key_refused {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<String, Error> {
            Err(key_must_be_text())
        })*
    };
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }
    write_decimal!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(Error("floating-point numbers are not written".into()))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(Error("floating-point numbers are not written".into()))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.0, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.0, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq as _;
        let mut array = self.serialize_seq(Some(v.len()))?;
        for byte in v {
            array.serialize_element(byte)?;
        }
        array.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        // An object of one member is in order as it is.
        self.0.push(b'{');
        write_key(self.0, variant)?;
        value.serialize(Writer(self.0))?;
        self.0.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, Error> {
        self.0.push(b'[');
        Ok(Array {
            out: self.0,
            first: true,
            close_variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, Error> {
        self.0.push(b'{');
        write_key(self.0, variant)?;
        self.0.push(b'[');
        Ok(Array {
            out: self.0,
            first: true,
            close_variant: true,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>, Error> {
        Ok(Object::begin(self.0, len.unwrap_or(0), false))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>, Error> {
        Ok(Object::begin(self.0, len, false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a>, Error> {
        self.0.push(b'{');
        write_key(self.0, variant)?;
        Ok(Object::begin(self.0, len, true))
    }
}

/// An array being written.
pub struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// Also closes the `{"variant":` of a tuple variant.
    close_variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Writer(self.out))
    }
    fn close(self) -> Result<(), Error> {
        self.out.push(b']');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// The four array-shaped serde traits, all writing through [`Array`].
macro_rules! array_impl {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    };
}

array_impl!(SerializeSeq, serialize_element);
array_impl!(SerializeTuple, serialize_element);
array_impl!(SerializeTupleStruct, serialize_field);
array_impl!(SerializeTupleVariant, serialize_field);

/// One member written so far: `out[start..end]` is `"key":value`, the key `out[start + 1..key_end]`.
struct Member {
    start: usize,
    key_end: usize,
    end: usize,
}

/// An object being written: its members go to the buffer as they come, without separators,
/// and are put in key order when it ends.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    members: Vec<Member>,
    /// A map's key written by `serialize_key`, waiting for its value: (start, key_end).
    key: Option<(usize, usize)>,
    /// Also closes the `{"variant":` of a struct variant.
    close_variant: bool,
}

impl<'a> Object<'a> {
    fn begin(out: &'a mut Vec<u8>, len: usize, close_variant: bool) -> Self {
        let start = out.len();
        Object {
            out,
            start,
            members: Vec::with_capacity(len),
            key: None,
            close_variant,
        }
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        let start = self.out.len();
        write_key(self.out, key)?;
        let key_end = start + 1 + key.len();
        value.serialize(Writer(self.out))?;
        self.members.push(Member {
            start,
            key_end,
            end: self.out.len(),
        });
        Ok(())
    }

    fn close(mut self) -> Result<(), Error> {
        if self.key.is_some() {
            return Err(Error("a map key without its value".into()));
        }
        let out = &mut *self.out;
        let key = |m: &Member| &out[m.start + 1..m.key_end];
        self.members.sort_by(|a, b| key(a).cmp(key(b)));
        if let Some(pair) = self.members.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
            return Err(Error(format!(
                "the key {:?} appears twice in one object",
                String::from_utf8_lossy(key(&pair[0]))
            )));
        }
        let written = out.len() - self.start;
        let mut sorted = Vec::with_capacity(written + self.members.len() + 2);
        sorted.push(b'{');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                sorted.push(b',');
            }
            sorted.extend_from_slice(&out[m.start..m.end]);
        }
        sorted.push(b'}');
        if self.close_variant {
            sorted.push(b'}');
        }
        out.truncate(self.start);
        out.extend_from_slice(&sorted);
        Ok(())
    }
}

/// Structs and struct variants: members named by their field.
macro_rules! struct_impl {
    ($trait:ident) => {
        impl ser::$trait for Object<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.member(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    };
}

struct_impl!(SerializeStruct);
struct_impl!(SerializeStructVariant);

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        if self.key.is_some() {
            return Err(Error("two map keys without a value between".into()));
        }
        let text = key.serialize(KeyText)?;
        let start = self.out.len();
        write_key(self.out, &text)?;
        self.key = Some((start, start + 1 + text.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let (start, key_end) = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without its key".into()))?;
        value.serialize(Writer(self.out))?;
        self.members.push(Member {
            start,
            key_end,
            end: self.out.len(),
        });
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// A map key as text: strings as they are, integers in decimal (as serde_json writes them).
struct KeyText;

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    key_as_decimal!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64
    );
    key_refused!(
        serialize_bool: bool, serialize_f32: f32, serialize_f64: f64, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str
    );

    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(key_must_be_text())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Error> {
        Err(key_must_be_text())
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(key_must_be_text())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Error> {
        Err(key_must_be_text())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_text())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_text())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_text())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_text())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_text())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_text())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_text())
    }
}

fn key_must_be_text() -> Error {
    Error("a map key must be a string or an integer".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    /// The reference: serde_json's `Value` (members in a sorted map), written compactly.
    fn through_value<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(&serde_json::to_value(value).unwrap()).unwrap()
    }

    #[derive(Serialize)]
    #[serde(tag = "type")]
    enum Tagged {
        #[serde(rename = "b.second")]
        Second {
            zeta: u64,
            alpha: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            nested: Inner,
            list: Vec<Inner>,
        },
        #[serde(rename = "a.unit")]
        Unit,
    }

    #[derive(Serialize)]
    struct Inner {
        z: Kind,
        m: Kind,
        a: (i32, bool),
        bytes: serde_bytes_like::Bytes,
    }

    #[derive(Serialize)]
    enum Kind {
        Plain,
        Wrapped(u16),
        Pair(u8, u8),
        Shaped { y: i64, x: char },
    }

    mod serde_bytes_like {
        /// Serializes through `serialize_bytes`, as `serde_bytes` does.
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    fn inner(n: u8) -> Inner {
        Inner {
            z: Kind::Shaped {
                y: -(i64::from(n)) * 1_000_000_007,
                x: 'é',
            },
            m: if n < 2 {
                Kind::Wrapped(u16::from(n))
            } else {
                Kind::Pair(n, n + 1)
            },
            a: (i32::MIN + i32::from(n), n > 2),
            bytes: serde_bytes_like::Bytes(vec![0, n, 255]),
        }
    }

    #[test]
    fn writes_what_a_sorted_json_value_writes() {
        let values = vec![
            Tagged::Second {
                zeta: u64::MAX,
                alpha: Some(
                    "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} 雪 🦀".into(),
                ),
                skipped: None,
                nested: inner(1),
                list: vec![inner(2), inner(3)],
            },
            Tagged::Unit,
            Tagged::Second {
                zeta: 0,
                alpha: None,
                skipped: Some(7),
                nested: Inner {
                    z: Kind::Plain,
                    m: Kind::Plain,
                    a: (0, false),
                    bytes: serde_bytes_like::Bytes(Vec::new()),
                },
                list: Vec::new(),
            },
        ];
        let ours = to_vec(&values).unwrap();
        assert_eq!(
            String::from_utf8(ours.clone()).unwrap(),
            String::from_utf8(through_value(&values)).unwrap()
        );
        assert!(
            ours.starts_with(br#"[{"alpha":"quote \" backslash \\ newline \n tab \t nul \u0000"#)
        );
    }

    #[test]
    fn map_keys_are_sorted_and_integer_keys_written_as_text() {
        let map: BTreeMap<u32, &str> = [(10, "ten"), (9, "nine"), (100, "hundred")].into();
        // As text, "10" < "100" < "9".
        assert_eq!(
            to_vec(&map).unwrap(),
            br#"{"10":"ten","100":"hundred","9":"nine"}"#
        );
        assert_eq!(to_vec(&map).unwrap(), through_value(&map));
        let nested: BTreeMap<&str, BTreeMap<&str, u8>> =
            [("b", [("y", 1), ("x", 2)].into()), ("a", BTreeMap::new())].into();
        assert_eq!(to_vec(&nested).unwrap(), br#"{"a":{},"b":{"x":2,"y":1}}"#);
    }

    #[test]
    fn out_of_scope_values_are_refused() {
        assert!(to_vec(&1.5f64)
            .unwrap_err()
            .to_string()
            .contains("floating-point"));
        let odd_key: BTreeMap<&str, u8> = [("caf\u{e9}", 1)].into();
        assert!(to_vec(&odd_key)
            .unwrap_err()
            .to_string()
            .contains("printable ASCII"));
        let quoted: BTreeMap<&str, u8> = [("a\"b", 1)].into();
        assert!(to_vec(&quoted).is_err());
        let bool_key: BTreeMap<bool, u8> = [(true, 1)].into();
        assert!(to_vec(&bool_key)
            .unwrap_err()
            .to_string()
            .contains("map key"));
    }

    #[test]
    fn a_key_twice_in_one_object_is_refused() {
        struct Twice;
        impl Serialize for Twice {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("k", &1)?;
                map.serialize_entry("k", &2)?;
                map.end()
            }
        }
        assert!(to_vec(&Twice)
            .unwrap_err()
            .to_string()
            .contains("appears twice"));
    }
}
