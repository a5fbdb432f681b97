/*
 * report.c - one description, two renderings.  `vmcctl stat` and `vmcctl
 * region list` describe what they show once, as data: lists of counters
 * (name/value sections) and rows of cells (the VM, worker and region
 * tables).  The functions here print that data either for people - aligned
 * columns, sizes in MiB or powers of 1024, addresses in hex, latencies in
 * µs, ratios, "-" for none, control characters shown as '?' - or as JSON -
 * keys, numbers as numbers in bytes and ns, null for none, every string
 * escaped - so the two outputs always carry the same fields.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <string.h>

#define HIST_BAR 40

/* The length of the well-formed UTF-8 sequence at s (1..4), or 0 if the
 * bytes there are not one (a stray byte, an overlong form, a surrogate). */
static int utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	putchar('"');
	while (*s) {
		int n = utf8_len(s);
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if (*s < 0x20)
			printf("\\u%04x", *s);
		else if (n)
			fwrite(s, 1, (size_t)n, stdout);
		else
			printf("\\ufffd");   /* not UTF-8: the replacement character */
		s += n ? n : 1;
	}
	putchar('"');
}

/* ------------------------------------------------------------- counters */

/* n as the table shows it: a count, a size or a latency. */
static const char *value(const struct counter *k, uint64_t n, char buf[SIZE_BUF])
{
	double us = (double)n / 1e3;

	if (k->bytes)
		return size_str(n, buf);
	if (!k->usec)
		snprintf(buf, SIZE_BUF, "%llu", (unsigned long long)n);
	else if (n)
		snprintf(buf, SIZE_BUF, us < 1000 ? "%.3g µs" : "%.0f µs", us);
	else
		snprintf(buf, SIZE_BUF, "-");
	return buf;
}

void counters_table(const char *title, const struct counter *k, int n)
{
	char b[SIZE_BUF], o[SIZE_BUF];

	printf("\n%s\n", title);
	for (int i = 0; i < n; i++) {
		double r = k[i].of ? (double)k[i].n / (double)k[i].of : 0;
		printf("  %-18s ", k[i].label);
		if (k[i].of_key && !k[i].of) {
			printf("-\n");   /* a part of nothing */
			continue;
		}
		printf("%s", value(&k[i], k[i].n, b));
		if (k[i].of_key)
			printf(" / %s (%.1f%%)", value(&k[i], k[i].of, o), 100 * r);
		else if (k[i].of) {
			if (k[i].pct_of)
				printf(" (%.1f%% of %s)", 100 * r, k[i].pct_of);
			if (k[i].per)
				printf(" (%.2f per %s)", r, k[i].per);
		}
		putchar('\n');
	}
}

void counters_json(const struct counter *k, int n, int indent)
{
	for (int i = 0; i < n; i++) {
		printf("%s\n%*s\"%s\": %llu", i ? "," : "", indent, "", k[i].key,
		       (unsigned long long)k[i].n);
		if (k[i].of_key)
			printf(",\n%*s\"%s\": %llu", indent, "", k[i].of_key,
			       (unsigned long long)k[i].of);
	}
}

/* ---------------------------------------------------------------- cells */

/* Column width: at least the heading's; negative means left-aligned. */
static int width(const struct cell *c)
{
	int w = c->width < 0 ? -c->width : c->width, h = (int)strlen(c->head);
	w = w > h ? w : h;
	return c->width < 0 ? -w : w;
}

static const char *text(const struct cell *c, char buf[SIZE_BUF])
{
	if (c->none)
		return "-";
	switch (c->kind) {
	case CELL_STR:
		return c->s;
	case CELL_SIZE:
		return size_str(c->n, buf);
	case CELL_BOOL:
		return c->n ? "yes" : "NO";
	case CELL_MIB:
		snprintf(buf, SIZE_BUF, "%llu", (unsigned long long)(c->n >> 20));
		return buf;
	case CELL_HEX:
		snprintf(buf, SIZE_BUF, "%#llx", (unsigned long long)c->n);
		return buf;
	default:
		snprintf(buf, SIZE_BUF, "%llu", (unsigned long long)c->n);
		return buf;
	}
}

/* Marks and notes follow the row; they have no column. */
static int column(const struct cell *c)
{
	return c->kind != CELL_MARK && c->kind != CELL_NOTE;
}

void cells_head(const struct cell *c, int n)
{
	for (int i = 0; i < n; i++)
		if (column(&c[i]))
			printf(i ? " %*s" : "  %*s", width(&c[i]), c[i].head);
	putchar('\n');
}

/* s for a terminal: a control character in a name (a VM's, a region's, a
 * stray file's) shows as '?' instead of moving the cursor. */
static const char *printable(const char *s, char *buf, size_t n)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = 0;
	return buf;
}

void cells_row(const struct cell *c, int n)
{
	char buf[SIZE_BUF], safe[512];

	for (int i = 0; i < n; i++) {
		if (column(&c[i]))
			printf(i ? " %*s" : "  %*s", width(&c[i]),
			       printable(text(&c[i], buf), safe, sizeof safe));
		else if (c[i].kind == CELL_NOTE && !c[i].none)
			printf("  %s: %s", c[i].head, printable(c[i].s, safe, sizeof safe));
		else if (c[i].kind == CELL_MARK && c[i].n)
			printf("  (%s)", printable(c[i].s ? c[i].s : c[i].head, safe,
						   sizeof safe));
	}
	putchar('\n');
}

void cells_json(const struct cell *c, int n)
{
	putchar('{');
	for (int i = 0; i < n; i++) {
		printf("%s\"%s\": ", i ? ", " : "", c[i].key);
		if (c[i].none)
			printf("null");
		else if (c[i].kind == CELL_STR || c[i].kind == CELL_NOTE)
			json_str(c[i].s);
		else if (c[i].kind == CELL_BOOL || c[i].kind == CELL_MARK)
			printf(c[i].n ? "true" : "false");
		else
			printf("%llu", (unsigned long long)c[i].n);
	}
	putchar('}');
}

/* ----------------------------------------------------------- histograms */

void hist_table(const char *title, const uint64_t hist[VMC_HIST_BUCKETS])
{
	uint64_t max = 0;

	printf("\n%s\n", title);
	for (int k = 0; k < VMC_HIST_BUCKETS; k++)
		max = hist[k] > max ? hist[k] : max;
	if (!max)
		printf("  none\n");
	for (int k = 0; max && k < VMC_HIST_BUCKETS; k++) {
		char range[32], bar[HIST_BAR + 1];
		int len = (int)((double)hist[k] * HIST_BAR / (double)max);
		if (!hist[k])
			continue;
		len = len ? len : 1;
		memset(bar, '#', (size_t)len);
		bar[len] = 0;
		snprintf(range, sizeof range, "[2^%d ns, 2^%d ns)", k, k + 1);
		printf("  %-18s %10llu  %s\n", range, (unsigned long long)hist[k], bar);
	}
}

void hist_json(const uint64_t hist[VMC_HIST_BUCKETS])
{
	putchar('[');
	for (int k = 0; k < VMC_HIST_BUCKETS; k++)
		printf("%s%llu", k ? ", " : "", (unsigned long long)hist[k]);
	putchar(']');
}
