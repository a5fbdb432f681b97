/*
 * report.c - one description, two renderings.  `vmcctl stat` and `vmcctl
 * region list` describe what they show once, as data: lists of counters
 * (name/value sections) and rows of cells (the VM, worker and region
 * tables).  The functions here print that data either for people - aligned
 * columns, sizes in MiB or powers of 1024, addresses in hex, latencies in
 * µs, ratios, "-" for none - or as JSON - keys, numbers as numbers in bytes
 * and ns, null for none - so the two outputs always carry the same fields.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <string.h>

#define HIST_BAR 40

void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
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

void cells_head(const struct cell *c, int n)
{
	for (int i = 0; i < n; i++)
		if (c[i].kind != CELL_MARK)
			printf(i ? " %*s" : "  %*s", width(&c[i]), c[i].head);
	putchar('\n');
}

void cells_row(const struct cell *c, int n)
{
	char buf[SIZE_BUF];

	for (int i = 0; i < n; i++) {
		if (c[i].kind != CELL_MARK)
			printf(i ? " %*s" : "  %*s", width(&c[i]), text(&c[i], buf));
		else if (c[i].n)
			printf("  (%s)", c[i].s ? c[i].s : c[i].head);
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
		else if (c[i].kind == CELL_STR)
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
