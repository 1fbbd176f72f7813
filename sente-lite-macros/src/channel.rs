//! `#[channel]`: parses and checks the attribute and its struct into a
//! [`ChannelDef`], then renders the `Channel` impl and the channel's event enum.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Fields, Ident, Item, ItemStruct, LitStr, Token, Type, Visibility};

use crate::args::{self, skip_to_comma};
use crate::errors::Errors;
use crate::krate::{self, CratePath};

mod kw {
    syn::custom_keyword!(events);
    syn::custom_keyword!(derive);
}

/// One segment of a name pattern.
enum Segment {
    /// Literal text.
    Text(String),
    /// A parameter: the field it is filled from.
    Param(Ident),
}

/// One event the channel carries.
struct Carried {
    /// The event type as written.
    ty: Type,
    /// Its variant in the channel's event enum: the type's last path segment.
    variant: Ident,
}

/// What `#[channel]` was given, checked: everything the generated code needs.
pub(crate) struct ChannelDef {
    /// The struct, emitted exactly as written.
    item: ItemStruct,
    /// The pattern literal as written.
    pattern: LitStr,
    /// The pattern, split.
    segments: Vec<Segment>,
    /// The events, in the order written.
    events: Vec<Carried>,
    /// Derives for the event enum, `derive(Debug, Clone)`.
    derives: Vec<syn::Path>,
    /// Where the generated code finds the runtime.
    krate: CratePath,
}

/// The attribute's arguments.
struct ChannelArgs {
    pattern: Option<LitStr>,
    events: Option<(kw::events, Vec<Type>)>,
    derives: Option<Vec<syn::Path>>,
    krate: CratePath,
}

/// Expands `#[channel(args)] struct ...`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    Ok(ChannelDef::parse(args, item)?.render())
}

impl ChannelDef {
    /// Parses and checks the attribute and its struct, reporting every problem at once.
    fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let args = (|input: ParseStream<'_>| parse_args(input, &mut errors)).parse2(args);
        let item = match syn::parse2::<Item>(item) {
            Ok(Item::Struct(item)) => Ok(item),
            Ok(other) => Err(syn::Error::new(
                item_span(&other),
                "`#[channel]` goes on a struct whose fields are the pattern's parameters, such as `struct Room { name: String }` for `\"room/{name}\"`",
            )),
            Err(error) => Err(error),
        };
        let (args, item, mut errors) = args::both(errors, args, item)?;

        if !item.generics.params.is_empty() {
            errors.spanned(
                &item.generics,
                "a typed channel cannot be generic: its pattern and its events are fixed; declare one struct per kind of channel",
            );
        }
        let fields: Vec<(&Ident, &Type)> = match &item.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref().map(|i| (i, &f.ty)))
                .collect(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(unnamed) => {
                errors.spanned(
                    unnamed,
                    "a typed channel's fields are named after the pattern's parameters: write `struct Room { name: String }` for `\"room/{name}\"`",
                );
                Vec::new()
            }
        };

        let segments = match &args.pattern {
            Some(pattern) => parse_pattern(pattern, &fields, &mut errors),
            None => {
                errors.at(
                    Span::call_site(),
                    "`#[channel]` needs a name pattern: write `#[channel(\"room/{name}\", events(Said, Joined))]`",
                );
                Vec::new()
            }
        };

        let events = match &args.events {
            Some((key, types)) if types.is_empty() => {
                errors.spanned(
                    key,
                    "a channel carries at least one event: list them, `events(Said, Joined)`",
                );
                Vec::new()
            }
            Some((_, types)) => carried(types, &mut errors),
            None => {
                errors.at(
                    Span::call_site(),
                    "`#[channel]` needs the events it carries: write `#[channel(\"room/{name}\", events(Said, Joined))]`",
                );
                Vec::new()
            }
        };

        errors.finish()?;
        let Some(pattern) = args.pattern else {
            unreachable!("a missing pattern was recorded as an error");
        };
        Ok(Self {
            item,
            pattern,
            segments,
            events,
            derives: args.derives.unwrap_or_default(),
            krate: args.krate,
        })
    }

    /// Renders the struct, its `Channel` impl, its event enum and the checks.
    fn render(&self) -> TokenStream {
        let Self {
            item,
            pattern,
            segments,
            events,
            derives,
            krate,
        } = self;
        let ident = &item.ident;
        let vis: &Visibility = &item.vis;
        let enum_ident = format_ident!("{}Event", ident.unraw(), span = ident.span());
        let private = quote!(#krate::__private::channel);

        let field_ty = |param: &Ident| -> Type {
            match &item.fields {
                Fields::Named(named) => named
                    .named
                    .iter()
                    .find(|f| f.ident.as_ref() == Some(param))
                    .map(|f| f.ty.clone())
                    .unwrap_or_else(|| unreachable!("parameters were checked against the fields")),
                _ => unreachable!("a pattern with parameters has named fields"),
            }
        };

        // `name()`: the segments with the parameters' escaped text.
        let literal_len: usize = segments
            .iter()
            .map(|s| match s {
                Segment::Text(text) => text.len() + 1,
                Segment::Param(_) => 9,
            })
            .sum();
        let pushes = segments.iter().enumerate().map(|(i, segment)| {
            let slash = (i > 0).then(|| quote!(name.push('/');));
            match segment {
                Segment::Text(text) => quote!(#slash name.push_str(#text);),
                Segment::Param(param) => {
                    quote!(#slash #private::push_param(&mut name, &self.#param);)
                }
            }
        });

        // `parse()`: the segments checked and the parameters read back.
        let count = segments.len();
        let names: Vec<Ident> = (0..count).map(|i| format_ident!("segment_{i}")).collect();
        let reads = segments
            .iter()
            .zip(&names)
            .map(|(segment, at)| match segment {
                Segment::Text(text) => quote! {
                    if #at != #text {
                        return ::core::option::Option::None;
                    }
                },
                Segment::Param(param) => {
                    let ty = field_ty(param);
                    quote! {
                        let #param: #ty = <#ty as ::core::str::FromStr>::from_str(
                            &#private::param_text(#at)?,
                        )
                        .ok()?;
                    }
                }
            });
        let params: Vec<&Ident> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(param) => Some(param),
                Segment::Text(_) => None,
            })
            .collect();
        let build = match &item.fields {
            Fields::Named(_) => quote!(Self { #(#params),* }),
            _ => quote!(Self),
        };

        // Each parameter's type shows `Display` and `FromStr`, checked on the type.
        let param_checks = params.iter().map(|param| {
            let ty = field_ty(param);
            quote_spanned!(ty.span()=> __sente_lite_assert_param::<#ty>();)
        });
        // Each event is one-way, checked on the event as written.
        let event_checks = events.iter().map(|carried| {
            let ty = &carried.ty;
            quote_spanned!(ty.span()=> __sente_lite_assert_one_way::<#ty>();)
        });

        let event_tys: Vec<&Type> = events.iter().map(|c| &c.ty).collect();
        // What the checks below ask, as `where` clauses on the impls. Under
        // `for<'a>` they are not checked where they are written, so a misfit
        // is reported once, by its check, on the user's token.
        let param_tys: Vec<Type> = params.iter().map(|param| field_ty(param)).collect();
        let params_where = param_tys.iter().map(|ty| {
            let krate_at = krate.at(ty.span());
            quote_spanned!(ty.span()=> for<'a> #ty: #krate_at::__private::channel::Param,)
        });
        let params_where: Vec<TokenStream> = params_where.collect();
        let events_where = event_tys.iter().map(|ty| {
            let krate_at = krate.at(ty.span());
            quote_spanned!(ty.span()=> for<'a> #ty: #krate_at::OneWay,)
        });
        let events_where: Vec<TokenStream> = events_where.collect();
        let all_where = quote!(where #(#params_where)* #(#events_where)*);
        let variants: Vec<&Ident> = events.iter().map(|c| &c.variant).collect();
        let enum_doc = format!(
            "The events of channel [`{ident}`] (`{}`), declared by `#[channel]`: one variant per event it carries.",
            pattern.value()
        );
        let variant_docs = events.iter().map(|c| {
            format!(
                "A [`{}`] published on the channel.",
                c.ty.to_token_stream().to_string().replace(' ', "")
            )
        });

        #[cfg(feature = "typescript")]
        let typescript = {
            let typed_params: Vec<(&Ident, &Type)> = params
                .iter()
                .zip(&param_tys)
                .map(|(param, ty)| (*param, ty))
                .collect();
            crate::typescript::channel_record(pattern, ident, &typed_params, &event_tys, krate)
        };
        #[cfg(not(feature = "typescript"))]
        let typescript = TokenStream::new();

        quote! {
            #item

            #typescript

            #[doc = #enum_doc]
            #[derive(#(#derives),*)]
            // Declared for every channel; a program that only publishes
            // never reads it.
            #[allow(dead_code)]
            #vis enum #enum_ident {
                #(
                    #[doc = #variant_docs]
                    #variants(#event_tys),
                )*
            }

            #(
                impl ::core::convert::From<#event_tys> for #enum_ident {
                    fn from(event: #event_tys) -> Self {
                        Self::#variants(event)
                    }
                }

                impl #krate::Carries<#event_tys> for #ident #all_where {
                    fn channel_name(&self) -> #krate::__private::Cow<'_, str> {
                        #krate::__private::Cow::Owned(#krate::Channel::name(self))
                    }
                }
            )*

            // Never a value: a second event for `Carries`, so that with one
            // event the compiler does not infer it from the channel alone.
            #[diagnostic::do_not_recommend]
            impl #krate::Carries<#krate::__private::channel::NeverPublished> for #ident #all_where {
                fn channel_name(&self) -> #krate::__private::Cow<'_, str> {
                    #krate::__private::Cow::Owned(#krate::Channel::name(self))
                }
            }

            impl #krate::ChannelEvent for #enum_ident where #(#events_where)* {
                const IDS: &'static [&'static str] = &[
                    #(<#event_tys as #krate::Event>::ID),*
                ];

                fn decode(
                    event: &#krate::EventRef<'_>,
                    payload: #krate::Payload<'_>,
                ) -> ::core::option::Option<::core::result::Result<Self, #krate::ProtocolError>> {
                    #(
                        if let ::core::option::Option::Some(decoded) =
                            #private::decode_as::<#event_tys>(event, payload)
                        {
                            return ::core::option::Option::Some(decoded.map(Self::#variants));
                        }
                    )*
                    ::core::option::Option::None
                }
            }

            impl #krate::Channel for #ident #all_where {
                const PATTERN: &'static str = #pattern;
                type Event = #enum_ident;

                fn name(&self) -> ::std::string::String {
                    let mut name = ::std::string::String::with_capacity(#literal_len);
                    #(#pushes)*
                    name
                }

                fn parse(name: &str) -> ::core::option::Option<Self> {
                    let [#(#names),*] = #private::segments::<#count>(name)?;
                    #(#reads)*
                    ::core::option::Option::Some(#build)
                }
            }

            const _: () = {
                fn __sente_lite_assert_param<T: #krate::__private::channel::Param>() {}
                fn __sente_lite_assert_one_way<E: #krate::OneWay>() {}
                fn __sente_lite_check() {
                    #(#param_checks)*
                    #(#event_checks)*
                }
            };
        }
    }
}

/// Parses `"pattern", events(A, B), crate = "path"`, recording every mistake.
fn parse_args(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<ChannelArgs> {
    let mut args = ChannelArgs {
        pattern: None,
        events: None,
        derives: None,
        krate: CratePath::default_path(),
    };
    let mut first = true;
    while !input.is_empty() {
        if input.peek(LitStr) {
            let pattern: LitStr = input.parse()?;
            if first {
                args.pattern = Some(pattern);
            } else {
                errors.spanned(
                    &pattern,
                    "the name pattern comes first and only once: `#[channel(\"room/{name}\", events(Said, Joined))]`",
                );
            }
        } else if input.peek(kw::events) && input.peek2(syn::token::Paren) {
            let key: kw::events = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            let types = Punctuated::<Type, Token![,]>::parse_terminated(&content)?;
            if args.events.is_some() {
                errors.spanned(
                    key,
                    "`events` is given twice: list every event once, `events(Said, Joined)`",
                );
            } else {
                args.events = Some((key, types.into_iter().collect()));
            }
        } else if input.peek(kw::derive) && input.peek2(syn::token::Paren) {
            let key: kw::derive = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            let paths = Punctuated::<syn::Path, Token![,]>::parse_terminated(&content)?;
            if args.derives.is_some() {
                errors.spanned(
                    key,
                    "`derive` is given twice: list every derive of the event enum once, `derive(Debug, Clone)`",
                );
            } else {
                args.derives = Some(paths.into_iter().collect());
            }
        } else if krate::peek(input) {
            krate::parse(input, &mut args.krate, "channel", errors)?;
        } else {
            let tokens = skip_to_comma(input)?;
            errors.spanned(
                tokens,
                if first {
                    "the name pattern must be a string literal: write `#[channel(\"room/{name}\", events(Said, Joined))]`"
                } else {
                    "expected an option; `#[channel]` takes the pattern, `events(...)`, `derive(...)` (for the event enum) and `crate = \"path\"` (for a renamed sente-lite)"
                },
            );
        }
        first = false;
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// Splits and checks the pattern against the struct's fields.
fn parse_pattern(
    pattern: &LitStr,
    fields: &[(&Ident, &Type)],
    errors: &mut Errors,
) -> Vec<Segment> {
    let text = pattern.value();
    let mut segments = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    if text.is_empty() {
        errors.spanned(
            pattern,
            "a channel pattern is not empty: write its name, such as \"lobby\" or \"room/{name}\"",
        );
        return segments;
    }
    for part in text.split('/') {
        if part.is_empty() {
            errors.spanned(
                pattern,
                format!(
                    "a channel pattern has no empty segment: `{text}` has `//`, or a `/` at an end"
                ),
            );
            continue;
        }
        let param = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
        match param {
            Some(name) if !name.contains(['{', '}']) => {
                let Some((field, _)) = fields.iter().find(|(f, _)| f.unraw() == name) else {
                    let known: Vec<String> = fields.iter().map(|(f, _)| format!("`{f}`")).collect();
                    errors.spanned(
                        pattern,
                        if known.is_empty() {
                            format!("the pattern's parameter `{{{name}}}` names no field: add the field `{name}` to the struct")
                        } else {
                            format!(
                                "the pattern's parameter `{{{name}}}` names no field of the struct (its fields: {}): rename the parameter or add the field",
                                known.join(", ")
                            )
                        },
                    );
                    continue;
                };
                if !seen.insert(name.to_owned()) {
                    errors.spanned(
                        pattern,
                        format!("the parameter `{{{name}}}` appears twice in the pattern: each field fills one segment"),
                    );
                    continue;
                }
                segments.push(Segment::Param((*field).clone()));
            }
            _ if part.contains(['{', '}']) => errors.spanned(
                pattern,
                format!(
                    "`{part}`: a parameter is a whole segment, `{{field}}` between two `/`, such as \"room/{{name}}\""
                ),
            ),
            _ => segments.push(Segment::Text(part.to_owned())),
        }
    }
    for (field, _) in fields {
        if !seen.contains(&field.unraw().to_string()) {
            errors.spanned(
                field,
                format!(
                    "field `{field}` is not in the pattern `{text}`: every field is a parameter of the name; add `{{{field}}}` to the pattern or remove the field"
                ),
            );
        }
    }
    segments
}

/// Checks the events: each a type path, each once, with distinct last names.
fn carried(types: &[Type], errors: &mut Errors) -> Vec<Carried> {
    let mut out: Vec<Carried> = Vec::new();
    for ty in types {
        let Type::Path(path) = ty else {
            errors.spanned(
                ty,
                "an event is named by its type's path, such as `Said` or `chat::Said`",
            );
            continue;
        };
        let Some(last) = path.path.segments.last() else {
            continue;
        };
        let variant = last.ident.clone();
        if let Some(prev) = out.iter().find(|c| c.variant == variant) {
            let same = prev.ty.to_token_stream().to_string() == ty.to_token_stream().to_string();
            errors.spanned(
                ty,
                if same {
                    format!("`{variant}` is listed twice in `events(...)`: list each event once")
                } else {
                    format!(
                        "two events are named `{variant}`: the channel's event enum has one variant per name; rename one of the types"
                    )
                },
            );
            continue;
        }
        out.push(Carried {
            ty: ty.clone(),
            variant,
        });
    }
    out
}

/// Where to report that the item is not a struct: its keyword and name.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Enum(item) => item
            .enum_token
            .span
            .join(item.ident.span())
            .unwrap_or(item.ident.span()),
        Item::Fn(item) => item.sig.ident.span(),
        Item::Union(item) => item.ident.span(),
        Item::Trait(item) => item.ident.span(),
        other => other.span(),
    }
}
