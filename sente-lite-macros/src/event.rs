//! `#[event]`: parses and checks the attribute and its item into an [`EventDef`], then renders it.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Generics, Ident, Item, LitInt, LitStr, Path, Token, Type};

use crate::args::{self, skip_to_comma};
use crate::errors::Errors;
use crate::krate::{self, CratePath};

mod kw {
    syn::custom_keyword!(reply);
}

/// What `#[event]` was given, checked: everything the generated code needs.
pub(crate) struct EventDef {
    /// The struct or enum, emitted exactly as written.
    item: Item,
    /// The type's name.
    ident: Ident,
    /// The event id literal as written, so errors and the duplicate check point at it.
    id: LitStr,
    /// The id's key: 32-bit FNV-1a of the id bytes.
    key: u32,
    /// `reply = Type`, when the event is a request.
    reply: Option<Type>,
    /// Where the generated code finds the runtime (`crate = "path"`).
    krate: CratePath,
}

/// The attribute's arguments: `"namespace/name"` and, for a request, `reply = Type`.
struct EventArgs {
    /// The id, when one was written as a string literal.
    id: Option<LitStr>,
    /// The reply type, when `reply = Type` was written.
    reply: Option<Type>,
    /// `crate = "path"`, or the runtime under its own name.
    krate: CratePath,
    /// Whether something other than a string literal stood where the id goes
    /// (already reported, so a missing id is not reported again).
    id_misplaced: bool,
}

/// Expands `#[event(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    Ok(EventDef::parse(args, item)?.render())
}

impl EventDef {
    /// Parses and checks the attribute and its item, reporting every problem at once.
    fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let args = (|input: ParseStream<'_>| parse_args(input, &mut errors)).parse2(args);
        let item = syn::parse2::<Item>(item);

        let (args, item, mut errors) = args::both(errors, args, item)?;

        let ident = match &item {
            Item::Struct(item) => {
                check_not_generic(&item.generics, &mut errors);
                Some(item.ident.clone())
            }
            Item::Enum(item) => {
                check_not_generic(&item.generics, &mut errors);
                Some(item.ident.clone())
            }
            other => {
                errors.spanned(
                    item_head(other),
                    format!(
                        "`#[event]` cannot be used on {}; put it on a struct or an enum that derives `Serialize` and `Deserialize`",
                        item_kind(other)
                    ),
                );
                None
            }
        };

        let key = match &args.id {
            Some(id) => {
                let value = id.value();
                if let Err(reason) = validate_event_id(&value) {
                    errors.spanned(id, reason);
                }
                fnv1a_32(value.as_bytes())
            }
            None if args.id_misplaced => 0,
            None => {
                errors.at(
                    Span::call_site(),
                    "`#[event]` needs an event id: write `#[event(\"namespace/name\")]`, adding `reply = ReplyType` for a request",
                );
                0
            }
        };

        errors.finish()?;
        let (Some(ident), Some(id)) = (ident, args.id) else {
            unreachable!("a missing id or item was recorded as an error");
        };
        Ok(Self {
            item,
            ident,
            id,
            key,
            reply: args.reply,
            krate: args.krate,
        })
    }

    /// Renders the item followed by its `Event` impl, checks and registration.
    fn render(&self) -> TokenStream {
        let Self {
            item,
            ident,
            id,
            key,
            reply,
            krate,
        } = self;
        let type_name = ident.unraw().to_string();
        let key_lit = LitInt::new(&format!("{key:#010x}"), Span::call_site());
        let is_request = reply.is_some();

        let reply_type = match reply {
            Some(reply) => reply.to_token_stream(),
            None => quote!(#krate::NoReply),
        };
        let reply_name = match reply {
            Some(reply) => {
                let written = type_as_written(reply);
                quote!(::core::option::Option::Some(#written))
            }
            None => quote!(::core::option::Option::None),
        };
        // One const per key in the module: a second event with the same id (or a
        // colliding key) in this module fails with "defined multiple times", pointing
        // at both ids. The name is what the user reads in that error.
        let duplicate_guard = Ident::new(
            &format!("__sente_lite_event_key_{key:08x}__give_each_event_its_own_id"),
            id.span(),
        );
        let duplicate_guard = quote_spanned! {id.span()=>
            #[doc(hidden)]
            #[allow(non_upper_case_globals, dead_code)]
            const #duplicate_guard: () = ();
        };

        // What `Event` asks of the type beyond what the macro writes. The check is
        // spanned on the type's name, so a missing derive (or an `Rc` field) is
        // reported there, with serde's own "consider adding `#[derive(...)]`" note.
        let krate_at = krate.at(ident.span());
        let bounds_check = quote_spanned! {ident.span()=>
            const _: () = {
                fn __sente_lite_assert_event_bounds<
                    T: #krate_at::__private::serde::Serialize
                        + for<'de> #krate_at::__private::serde::Deserialize<'de>
                        + ::core::marker::Send
                        + ::core::marker::Sync,
                >() {
                }
                fn __sente_lite_check() {
                    __sente_lite_assert_event_bounds::<#ident>();
                }
            };
        };
        // The same bounds as a `where` clause on the impls. Under `for<'de>` it is not
        // checked where it is written, so when the type misses one of them only the
        // check above reports it, instead of a second error on each impl.
        let where_clause = quote! {
            where
                for<'de> #ident: #krate::__private::serde::Serialize
                    + #krate::__private::serde::Deserialize<'de>
                    + ::core::marker::Send
                    + ::core::marker::Sync,
        };
        let own = crate::krate::library_own();
        let kind_impl = if is_request {
            quote! {
                #own
                impl #krate::Request for #ident #where_clause {}
            }
        } else {
            quote! {
                #own
                impl #krate::OneWay for #ident #where_clause {}
            }
        };

        // The shapes for the schema hash. A reply type without `JsonSchema` is
        // reported on the user's `reply = Type`.
        let reply_shape = match reply {
            Some(reply) => {
                let krate_at = krate.at(reply.span());
                quote_spanned! {reply.span()=>
                    ::core::option::Option::Some(<#reply as #krate_at::__private::ReplyShape>::reply_shape)
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let shapes = quote! {
            #krate::__private::inventory::submit! {
                #krate::__private::ShapeRecord {
                    id: #id,
                    module_path: ::core::module_path!(),
                    payload: #krate::__private::shape_of::<#ident>,
                    reply: #reply_shape,
                }
            }
        };

        // Built from the id and key rather than through the `Event` impl, so a type
        // missing a bound gets one error (the check above), not one more here.
        let registration = quote! {
            #krate::__private::inventory::submit! {
                #krate::__private::EventRecord {
                    id: #id,
                    key: #krate::EventKey::from_raw(#key_lit),
                    type_name: #type_name,
                    reply_type: #reply_name,
                    module_path: ::core::module_path!(),
                }
            }
            const _: () = {
                fn __sente_lite_transcode(
                    json: &str,
                ) -> ::core::result::Result<#krate::registry::Transcoded, ::std::string::String> {
                    #[allow(unused_imports)]
                    use #krate::__private::{TranscodeEvent as _, TranscodeNothing as _};
                    (&&#krate::__private::TranscodeProbe::<#ident>::new()).transcode(json)
                }
                #krate::__private::inventory::submit! {
                    #krate::__private::TranscodeRecord {
                        id: #id,
                        transcode: __sente_lite_transcode,
                    }
                }
            };
        };

        #[cfg(feature = "typescript")]
        let typescript = crate::typescript::record(id, ident, reply.as_ref(), krate);
        #[cfg(not(feature = "typescript"))]
        let typescript = TokenStream::new();

        let item = with_shape_derive(item, krate);
        quote! {
            #item

            #own
            impl #krate::Event for #ident #where_clause {
                const ID: &'static str = #id;
                const KEY: #krate::EventKey = #krate::EventKey::from_raw(#key_lit);
                type Reply = #reply_type;
                const IS_REQUEST: bool = #is_request;
            }

            #kind_impl

            const _: () = ::core::assert!(#krate::__private::key_matches(#id, #key_lit));

            #duplicate_guard

            #bounds_check

            #registration

            #shapes

            #typescript
        }
    }
}

/// The item with `#[derive(JsonSchema)]` added, unless it derives it already.
fn with_shape_derive(item: &Item, krate: &CratePath) -> Item {
    let mut item = item.clone();
    let attrs = match &mut item {
        Item::Struct(item) => &mut item.attrs,
        Item::Enum(item) => &mut item.attrs,
        _ => return item,
    };
    let derives_it = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("derive"))
        .filter_map(|attr| {
            attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .any(|path| {
            path.segments
                .last()
                .is_some_and(|s| s.ident == "JsonSchema")
        });
    if !derives_it {
        let schemars = format!("{}::__private::schemars", krate.to_token_stream());
        attrs.push(syn::parse_quote!(#[derive(#krate::__private::schemars::JsonSchema)]));
        attrs.push(syn::parse_quote!(#[schemars(crate = #schemars)]));
    }
    item
}

/// Parses `"namespace/name"` then options, recording every mistake and going on.
fn parse_args(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<EventArgs> {
    let mut args = EventArgs {
        id: None,
        reply: None,
        krate: CratePath::default_path(),
        id_misplaced: false,
    };
    let mut first = true;
    while !input.is_empty() {
        let lookahead = input.lookahead1();
        if lookahead.peek(LitStr) {
            let id: LitStr = input.parse()?;
            if first {
                args.id = Some(id);
            } else {
                errors.spanned(
                    &id,
                    "the event id comes first and only once: `#[event(\"namespace/name\", reply = ReplyType)]`",
                );
            }
        } else if lookahead.peek(kw::reply) && input.peek2(Token![=]) {
            let key: kw::reply = input.parse()?;
            input.parse::<Token![=]>()?;
            let reply: Type = input.parse()?;
            if first {
                args.id_misplaced = true;
                errors.spanned(
                    key,
                    "the event id comes first: write `#[event(\"namespace/name\", reply = ReplyType)]`",
                );
            }
            if args.reply.is_some() {
                errors.spanned(
                    key,
                    "`reply` is given twice; an event has one reply type: keep one `reply = ReplyType`",
                );
            } else {
                args.reply = Some(reply);
            }
        } else if krate::peek(input) {
            if first {
                args.id_misplaced = true;
                errors.at(
                    input.span(),
                    "the event id comes first: write `#[event(\"namespace/name\", crate = \"path\")]`",
                );
            }
            krate::parse(input, &mut args.krate, "event", errors)?;
        } else if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
            let key = input.call(Ident::parse_any)?;
            errors.spanned(
                &key,
                format!(
                    "unknown option `{key}`; `#[event]` takes the id, `reply = ReplyType` (for a request) and `crate = \"path\"` (for a renamed sente-lite)"
                ),
            );
            input.parse::<Token![=]>()?;
            skip_to_comma(input)?;
        } else {
            let tokens = skip_to_comma(input)?;
            if first {
                args.id_misplaced = true;
                errors.spanned(
                    tokens,
                    "the event id must be a string literal: write `#[event(\"namespace/name\")]`, such as `#[event(\"chat/send\")]`",
                );
            } else {
                errors.spanned(
                    tokens,
                    "expected an option; `#[event]` takes the id, `reply = ReplyType` (for a request) and `crate = \"path\"` (for a renamed sente-lite)",
                );
            }
        }
        first = false;
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// Events have one fixed id and one wire shape, so they cannot have parameters.
fn check_not_generic(generics: &Generics, errors: &mut Errors) {
    if !generics.params.is_empty() {
        errors.spanned(
            generics,
            "events cannot be generic: an event id names exactly one type; declare a concrete struct or enum for each id",
        );
    }
}

/// The tokens that name an item, such as `fn name`, for errors about the item as a whole.
fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Union(item) => {
            let (union_token, ident) = (&item.union_token, &item.ident);
            quote!(#union_token #ident)
        }
        Item::Fn(item) => {
            let (fn_token, ident) = (&item.sig.fn_token, &item.sig.ident);
            quote!(#fn_token #ident)
        }
        Item::Trait(item) => {
            let (trait_token, ident) = (&item.trait_token, &item.ident);
            quote!(#trait_token #ident)
        }
        Item::Type(item) => {
            let (type_token, ident) = (&item.type_token, &item.ident);
            quote!(#type_token #ident)
        }
        Item::Const(item) => {
            let (const_token, ident) = (&item.const_token, &item.ident);
            quote!(#const_token #ident)
        }
        Item::Static(item) => {
            let (static_token, ident) = (&item.static_token, &item.ident);
            quote!(#static_token #ident)
        }
        Item::Mod(item) => {
            let (mod_token, ident) = (&item.mod_token, &item.ident);
            quote!(#mod_token #ident)
        }
        Item::Impl(item) => {
            let (impl_token, self_ty) = (&item.impl_token, &item.self_ty);
            quote!(#impl_token #self_ty)
        }
        other => other.to_token_stream(),
    }
}

/// "a union", "a function", ... for the error about an unsupported item.
fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::Union(_) => "a union",
        Item::Fn(_) => "a function",
        Item::Trait(_) | Item::TraitAlias(_) => "a trait",
        Item::Type(_) => "a type alias",
        Item::Const(_) => "a const",
        Item::Static(_) => "a static",
        Item::Mod(_) => "a module",
        Item::Impl(_) => "an impl block",
        Item::Use(_) => "a `use` declaration",
        Item::Macro(_) => "a macro invocation",
        _ => "this item",
    }
}

/// The type as the user wrote it, without the spaces token printing puts between tokens:
/// `Vec < User >` becomes `Vec<User>`. Spaces stay between two words and after `,` and `;`.
fn type_as_written(ty: &Type) -> String {
    let printed = ty.to_token_stream().to_string();
    let chars: Vec<char> = printed.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut out = String::with_capacity(printed.len());
    for (i, &c) in chars.iter().enumerate() {
        if c != ' ' {
            out.push(c);
            continue;
        }
        let before = out.chars().last();
        let after = chars.get(i + 1).copied();
        let keep = match (before, after) {
            (Some(b), Some(a)) => (word(b) && word(a)) || b == ',' || b == ';',
            _ => false,
        };
        if keep {
            out.push(' ');
        }
    }
    out
}

/// Checks an event id with exactly the rules of `sente_lite::validate_event_id`.
///
/// An id is `namespace/name`: exactly one `/`, both sides non-empty, made of
/// lowercase ASCII letters, digits, `_`, `-` and `.`, at most 128 bytes, and the
/// namespace `sl` is reserved for the protocol's own frames.
pub(crate) fn validate_event_id(id: &str) -> Result<(), &'static str> {
    const MSG: &str = "an event id is `namespace/name` using lowercase ASCII letters, digits, `_`, `-` and `.`, such as \"chat/send\"";
    if id.len() > 128 {
        return Err("an event id is at most 128 bytes long");
    }
    let Some((namespace, name)) = id.split_once('/') else {
        return Err(MSG);
    };
    let allowed = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            })
    };
    if !allowed(namespace) || !allowed(name) {
        return Err(MSG);
    }
    if namespace == "sl" {
        return Err("the namespace `sl` is reserved for the protocol's own frames; pick another");
    }
    Ok(())
}

/// 32-bit FNV-1a: offset basis `0x811c9dc5`, prime `0x01000193`, XOR then wrapping multiply.
pub(crate) fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn valid_ids_pass() {
        for id in ["chat/send", "a.b-c_d/e9", "user/get", "s/l", "sla/x"] {
            assert_eq!(validate_event_id(id), Ok(()), "{id}");
        }
        let longest = format!("{}/{}", "a".repeat(63), "b".repeat(64));
        assert_eq!(longest.len(), 128);
        assert_eq!(validate_event_id(&longest), Ok(()));
    }

    #[test]
    fn invalid_ids_fail_with_the_runtime_sentences() {
        let shape = "an event id is `namespace/name` using lowercase ASCII letters, digits, `_`, `-` and `.`, such as \"chat/send\"";
        for id in [
            "",
            "chat",
            "Chat/send",
            "chat/Send",
            "chat/",
            "/send",
            "/",
            "a/b/c",
            "chat/se nd",
            "chat/send!",
            "ch\u{e4}t/x",
        ] {
            assert_eq!(validate_event_id(id), Err(shape), "{id:?}");
        }
        assert_eq!(
            validate_event_id("sl/ping"),
            Err("the namespace `sl` is reserved for the protocol's own frames; pick another")
        );
        let too_long = format!("{}/{}", "a".repeat(64), "b".repeat(64));
        assert_eq!(too_long.len(), 129);
        assert_eq!(
            validate_event_id(&too_long),
            Err("an event id is at most 128 bytes long")
        );
    }

    #[test]
    fn reply_types_print_as_written() {
        let ty: Type = syn::parse_quote!(Vec<crate::User>);
        assert_eq!(type_as_written(&ty), "Vec<crate::User>");
        let ty: Type = syn::parse_quote!(Result<(u8, &'static str), [u8; 4]>);
        assert_eq!(type_as_written(&ty), "Result<(u8, &'static str), [u8; 4]>");
        let ty: Type = syn::parse_quote!(User);
        assert_eq!(type_as_written(&ty), "User");
    }

    #[test]
    fn options_are_checked_together() {
        let item: TokenStream = quote!(
            struct A;
        );
        let err = EventDef::parse(quote!("Bad/id", colour = 1, reply = A, reply = B), item)
            .err()
            .expect("errors");
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("unknown option `colour`"));
        assert!(messages[1].starts_with("`reply` is given twice"));
        assert!(messages[2].starts_with("an event id is `namespace/name`"));
    }
}
