/*
 * WBXML for Exchange ActiveSync: code pages 0..25 of MS-ASWBXML (up to protocol 16.1), a
 * push-style decoder that builds a tree in an arena, XML and JSON renderings, a small tree
 * query API for the analyzer, and an encoder from XML back to WBXML. docs/wbxml.md describes
 * the tree, both renderings, the caps and what is refused.
 *
 * Decoding:
 *
 *   bytes --feed--> [header] -> [tokens] --> tree (struct et_wbxml_doc, arena-owned)
 *                      |            |
 *                      |            +-- unknown page/token: placeholder node, decoding goes on
 *                      +-- truncated/malformed: nodes so far are kept, doc->err says where
 *
 * Ownership: a document owns one arena; every node, name and text byte it points to lives
 * there and is valid until et_wbxml_doc_free(). Input bytes are copied, never borrowed.
 */
#ifndef ET_DECODER_WBXML_H
#define ET_DECODER_WBXML_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Code pages ------------------------------------------------------------------------ */

#define ET_WBXML_PAGES 26 /* pages 0 (AirSync) .. 25 (Find) */

/* Namespace name of a code page ("AirSync", "AirSyncBase", "Find"), NULL beyond page 25. */
const char *et_wbxml_page_name(unsigned page);
/* Tag name of (page, token) with token 0x05..0x3F (content/attribute bits ignored); NULL
 * when the page or token is unknown. Static strings. */
const char *et_wbxml_tag_name(unsigned page, unsigned token);
/* Page of a namespace name; accepts "AirSync", "AirSync:" and is case-insensitive. -1 when
 * unknown. n is the length of ns. */
int et_wbxml_page_by_name(const char *ns, size_t n);
/* Token of a tag name on a page, or -1. Case-sensitive as in the schemas. */
int et_wbxml_token_by_name(unsigned page, const char *name, size_t n);

/* ---- The tree -------------------------------------------------------------------------- */

enum et_wbxml_node_type {
    ET_WBXML_ELEMENT = 0, /* a tag: page, token, ns, name, children */
    ET_WBXML_TEXT = 1,    /* STR_I, STR_T or ENTITY: UTF-8 bytes in data/len */
    ET_WBXML_OPAQUE = 2   /* OPAQUE bytes in data/len; nested is set when they are WBXML */
};

/* How a text node was written (kept so that re-encoding gives the same bytes). */
enum et_wbxml_text_kind {
    ET_WBXML_STR_I = 0,  /* inline string */
    ET_WBXML_STR_T = 1,  /* string table reference; ref holds the offset */
    ET_WBXML_ENTITY = 2  /* character entity; ref holds the code point */
};

struct et_wbxml_doc;

struct et_wbxml_node {
    enum et_wbxml_node_type type;
    uint8_t page;           /* element: code page (0..255) */
    uint8_t token;          /* element: token without the content/attribute bits */
    uint8_t has_content;    /* element: the content bit was set (<A></A> rather than <A/>) */
    uint8_t text_kind;      /* text: enum et_wbxml_text_kind */
    const char *ns;         /* element: namespace name, NULL when the page is unknown */
    const char *name;       /* element: local name, NULL when page or token is unknown */
    uint64_t offset;        /* byte offset of the token in the input */
    struct et_wbxml_node *parent;
    struct et_wbxml_node *first_child; /* element only */
    struct et_wbxml_node *last_child;
    struct et_wbxml_node *next;        /* next sibling */
    const uint8_t *data;    /* text/opaque bytes, NUL-terminated (the NUL is not in len) */
    size_t len;
    uint32_t ref;           /* STR_T offset or ENTITY code point */
    struct et_wbxml_doc *nested; /* opaque: the decoded WBXML document it holds, or NULL */
    const char *text;       /* element: concatenated text of its text/opaque children */
    size_t text_len;
};

struct et_wbxml_doc {
    uint8_t version;        /* 0x03 for WBXML 1.3 */
    uint32_t publicid;      /* 0x01 (unknown) for EAS; 0 when publicid_index is used */
    uint32_t publicid_index;/* string-table offset of a string public id */
    uint32_t charset;       /* IANA MIBenum: 106 = UTF-8, 0 = unknown */
    uint8_t fragment;       /* the input had no header (a bare body) */
    const uint8_t *strtbl;  /* string table (may be NULL) */
    size_t strtbl_len;
    struct et_wbxml_node *root; /* first element; NULL when none was decoded. A headerless
                                   fragment may hold several top-level elements: root->next */
    uint32_t pages_used;    /* bit p set when page p < 32 occurs (namespace declarations) */
    size_t nodes;           /* node count */
    size_t consumed;        /* input bytes consumed */
    struct et_error err;    /* set (code != 0) when decoding stopped early; partial tree kept */
    struct et_arena *arena; /* owns the doc and all nodes */
};

/* Limits; zero fields take the defaults noted. */
struct et_wbxml_opts {
    unsigned max_depth;    /* element nesting, default 256; beyond it ET_ETOOBIG */
    size_t max_nodes;      /* default 4,000,000 */
    size_t max_bytes;      /* arena bytes (nodes + text), default 128 MiB */
    size_t max_text;       /* text bytes the document stands for, every STR_T reference and
                              nested document counted each time (the string-table bomb:
                              0.9 MB of WBXML standing for 100 GB of text); default
                              ET_BODY_BUDGET; beyond it ET_ETOOBIG */
    int fragment;          /* 0: auto-detect a missing header; 1: input has no header;
                              -1: a header is required */
    int no_nested;         /* 1: never decode OPAQUE as nested WBXML */
    int any_publicid;      /* 1: decode even when the public id is not an EAS one */
};

/* ---- Push decoder ---------------------------------------------------------------------- */

/* The decoder state, embedded by the caller; fields are private. */
struct et_wbxml_decoder {
    struct et_wbxml_doc *doc;
    struct et_wbxml_opts opts;
    struct et_buf pending;    /* bytes of an incomplete token carried to the next feed */
    size_t need;              /* do not retry before pending holds this many bytes */
    uint64_t base;            /* input offset of the first pending byte */
    int state;                /* private: header / body / done */
    unsigned page;            /* current tag code page */
    unsigned depth;           /* open elements */
    unsigned nest;            /* nesting level of this document (0 = outermost) */
    struct et_wbxml_node *cur; /* innermost open element, NULL at top level */
    struct et_arena *arena;    /* the document's arena (shared by nested documents) */
    struct et_wbxml_node *last_top; /* last top-level element */
    size_t text;               /* text bytes so far, against opts.max_text */
    size_t budget;             /* the outermost document's text budget, which nested
                                  documents share (their opts.max_text is what is left) */
    uint64_t origin;           /* offset of this document's first byte in the outermost one:
                                  errors name offsets there */
};

/*
 * Starts decoding into a new document. opts may be NULL (defaults). Returns 0 or ET_ENOMEM.
 * Release with et_wbxml_free() (which frees the document unless it was taken with
 * et_wbxml_finish()).
 */
int et_wbxml_init(struct et_wbxml_decoder *d, const struct et_wbxml_opts *opts);
/*
 * Consumes bytes from *p up to end and advances *p past all of them (an incomplete token is
 * copied into the decoder). Returns ET_EAGAIN when more input may follow (not an error),
 * 0 when the document is complete (root element closed; trailing bytes are then an error),
 * or a negative ET_E* after which d->doc->err holds the reason and offset; the tree built so
 * far stays. Borrows the bytes only for the duration of the call.
 */
int et_wbxml_feed(struct et_wbxml_decoder *d, const uint8_t **p, const uint8_t *end);
/*
 * Ends the input. Returns 0 when a complete document was decoded, else the error
 * (ET_ETRUNC when input ended inside the document), which is also in (*doc)->err. In both
 * cases *doc receives the document (the caller owns it: et_wbxml_doc_free()).
 */
int et_wbxml_finish(struct et_wbxml_decoder *d, struct et_wbxml_doc **doc);
/* Releases the decoder (and the document when not taken by finish). */
void et_wbxml_free(struct et_wbxml_decoder *d);

/*
 * One call: decodes len bytes. Returns 0 or the error (also copied into *err when err is not
 * NULL). *doc is set whenever a document could be allocated, even on error (partial tree);
 * the caller frees it. Borrows bytes.
 */
int et_wbxml_decode(const uint8_t *bytes, size_t len, const struct et_wbxml_opts *opts,
                    struct et_wbxml_doc **doc, struct et_error *err);
/* Frees a document and everything in it. NULL does nothing. */
void et_wbxml_doc_free(struct et_wbxml_doc *doc);

/* ---- Rendering ------------------------------------------------------------------------- */

struct et_wbxml_render_opts {
    int compact;            /* 1: no newlines or indentation */
    int no_status_comments; /* 1: omit <!-- 3 = ... --> after Status elements */
    int no_declaration;     /* 1: omit <?xml version="1.0" encoding="utf-8"?> */
    size_t max_output;      /* bytes one rendering may append (0: ET_BODY_BUDGET); beyond it
                               the rendering stops with ET_ETOOBIG, out holding a prefix */
    int include_secrets;    /* 1: show the text of Password elements (eastrace/redact.h);
                               0 (default): "[redacted]" */
};

/*
 * Appends the XML rendering of doc to out (see docs/wbxml.md for the namespace scheme).
 * When doc->err is set the partial tree is rendered, followed by a comment naming the error
 * and its offset; when a cap stopped the document (ET_ETOOBIG) only its first MiB is (a bomb
 * stopped at the budget must not still come out as a budget's worth of XML). Returns 0, or ET_ETOOBIG when out's cap or the output budget
 * (opts->max_output) was hit (out then holds a prefix).
 */
int et_wbxml_to_xml(const struct et_wbxml_doc *doc, const struct et_wbxml_render_opts *opts,
                    struct et_buf *out);
/* Appends the JSON rendering of doc to out (shape in docs/wbxml.md). Returns 0 or
 * ET_ETOOBIG. */
int et_wbxml_to_json(const struct et_wbxml_doc *doc, const struct et_wbxml_render_opts *opts,
                     struct et_buf *out);
/*
 * Bytes straight to XML: decode + render in one call, reusing one arena. Returns the decode
 * error (the partial XML is still appended) or ET_ETOOBIG from out. err may be NULL.
 */
int et_wbxml_bytes_to_xml(const uint8_t *bytes, size_t len, const struct et_wbxml_opts *opts,
                          const struct et_wbxml_render_opts *ropts, struct et_buf *out,
                          struct et_error *err);

/* ---- Tree queries ---------------------------------------------------------------------- */

/* First child element / next sibling element (text and opaque nodes skipped); NULL at end. */
const struct et_wbxml_node *et_wbxml_first_element(const struct et_wbxml_node *n);
const struct et_wbxml_node *et_wbxml_next_element(const struct et_wbxml_node *n);
/*
 * Concatenated text of an element's text and opaque children (NUL-terminated; "" when
 * none); for a text/opaque node its bytes. *len (may be NULL) receives the length.
 * Valid as long as the document.
 */
const char *et_wbxml_node_text(const struct et_wbxml_node *n, size_t *len);
/* Reads an element's text as a decimal integer (blanks around it allowed). Returns 0,
 * ET_ENOTFOUND when n is NULL, or ET_EPARSE. */
int et_wbxml_node_int(const struct et_wbxml_node *n, long long *out);
/* True when element n has local name `name` and, when ns is not NULL, namespace ns. */
int et_wbxml_node_is(const struct et_wbxml_node *n, const char *ns, const char *name);

/*
 * Paths: steps separated by '/', each "Name" (any namespace) or "Ns:Name" (e.g.
 * "AirSync:Status"), or "*" for any element. A path is relative to `from`: "Collections/
 * Collection" matches grandchildren. A leading "//" matches at any depth below `from`
 * ("//AirSync:Status" is every AirSync Status). Paths longer than 16 steps match nothing.
 */
struct et_wbxml_iter {
    const struct et_wbxml_node *from;
    const struct et_wbxml_node *cur;
    const char *path;
};
/* First match in document order, or NULL. */
const struct et_wbxml_node *et_wbxml_find(const struct et_wbxml_node *from, const char *path);
/* Iterates every match in document order: init, then next until NULL. Borrows path. */
void et_wbxml_iter_init(struct et_wbxml_iter *it, const struct et_wbxml_node *from,
                        const char *path);
const struct et_wbxml_node *et_wbxml_iter_next(struct et_wbxml_iter *it);
/* Integer value of the first match of path below from: 0, ET_ENOTFOUND or ET_EPARSE. */
int et_wbxml_find_int(const struct et_wbxml_node *from, const char *path, long long *out);

/* ---- Encoding -------------------------------------------------------------------------- */

/*
 * Encodes XML (as et_wbxml_to_xml writes it, or EAS XML with xmlns="AirSync:" style
 * namespaces) into WBXML appended to out. Accepts CDATA (encoded as OPAQUE), the
 * "<!-- opaque N bytes, base64 -->" form, nested WBXML opaque, <unknown page= token=>
 * placeholders; ignores other comments and XML declarations; rejects DTDs. Returns 0 or
 * ET_EPARSE (err names the line/byte), ET_ENOTFOUND for an element no code page knows,
 * ET_ENOMEM, ET_ETOOBIG. err may be NULL. Borrows xml.
 */
int et_wbxml_encode(const char *xml, size_t len, struct et_buf *out, struct et_error *err);
/* Encodes a tree back to WBXML (same bytes as the original when it used no string table
 * and no redundant SWITCH_PAGE). Returns 0, ET_ETOOBIG or ET_ENOMEM. */
int et_wbxml_encode_doc(const struct et_wbxml_doc *doc, struct et_buf *out);

#ifdef __cplusplus
}
#endif
#endif
