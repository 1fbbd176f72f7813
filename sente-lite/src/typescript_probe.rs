//! What `#[event]` generates for TypeScript, against which the generated code
//! compiles with or without the `typescript` feature. Not a public API.
//!
//! `(&&Probe::<T>::new()).describe(out)` is autoref dispatch on a concrete type:
//! it resolves to [`Described`] (implemented with the feature, for `T: ts_rs::TS`)
//! when it applies, and to [`Undescribed`] otherwise.

use std::marker::PhantomData;

/// The declarations gathered while describing events.
#[cfg(feature = "typescript")]
pub use crate::typescript::Declarations;

/// Without the `typescript` feature nothing is declared.
#[cfg(not(feature = "typescript"))]
#[derive(Debug)]
pub struct Declarations(());

/// A TypeScript type expression, such as `User` or `Array<string>`.
pub type TsType = String;

/// Describes an event type or reply type, when it implements `TS`.
pub type Describe = fn(&mut Declarations) -> Option<TsType>;

/// The TypeScript side of one `#[event]`.
#[derive(Debug)]
pub struct TypeRecord {
    /// The event id.
    pub id: &'static str,
    /// The Rust type's name.
    pub type_name: &'static str,
    /// `module_path!()` where the type is defined.
    pub module_path: &'static str,
    /// Describes the payload type.
    pub payload: Describe,
    /// Describes the reply type of a request.
    pub reply: Option<Describe>,
}

inventory::collect!(TypeRecord);

/// The TypeScript side of one `#[channel]`.
#[derive(Debug)]
pub struct ChannelTypeRecord {
    /// The name pattern, `room/{name}`.
    pub pattern: &'static str,
    /// The Rust type's name.
    pub type_name: &'static str,
    /// `module_path!()` where the type is defined.
    pub module_path: &'static str,
    /// Each parameter's name and how to describe its type.
    pub params: &'static [(&'static str, Describe)],
    /// The ids of the events the channel carries.
    pub events: &'static [&'static str],
}

inventory::collect!(ChannelTypeRecord);

/// A probe of a type, for autoref dispatch.
pub struct Probe<T: ?Sized>(PhantomData<*const T>);

impl<T: ?Sized> Probe<T> {
    /// A probe of `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The description of a type that implements `TS` (implemented with the feature).
pub trait Described {
    /// Declares the type and returns its TypeScript name.
    fn describe(&self, out: &mut Declarations) -> Option<TsType>;
}

/// The fallback for a type that does not implement `TS`.
pub trait Undescribed {
    /// Nothing to declare.
    fn describe(&self, out: &mut Declarations) -> Option<TsType>;
}

impl<T: ?Sized> Undescribed for Probe<T> {
    fn describe(&self, _out: &mut Declarations) -> Option<TsType> {
        None
    }
}
