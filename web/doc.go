// Package web serves mtlsid's pages for people: today the sign-on page
// that completes a redirect identification (an Intent). Pages are
// server-rendered with html/template from embedded files, protected
// against cross-site form posts, and recognise people by their client
// certificate alone.
//
// server assembles it; it declares the authority methods it calls.
package web
