/* Mirrorball workload "dbbench": a scripted sqlite3 load (bulk load, indexed transactions, reports). */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqlite3.h"

/*
 * Like Disco's "database" load, a small transaction-processing job on a file-backed database:
 *   1. load ROWS accounts in transactions of 1000 rows, then index them by branch;
 *   2. run TXNS transactions of OPS operations each (TPC-B style: update a balance, read it back, append
 *      a history row), every commit going through sqlite's rollback journal (file creation, writes,
 *      fsync, deletion);
 *   3. run reports: per-branch totals, a join of history with accounts, the top balances.
 * The checksum is over every value the queries returned, so a wrong answer is caught.
 */

static const char usage[] =
	"usage: dbbench [-r ROWS] [-t TXNS] [-o OPS] [-f FILE] [-j MODE] [-k] [-S SEED]\n"
	"  -r ROWS  accounts to load (default 20000)\n"
	"  -t TXNS  transactions (default 2000)\n"
	"  -o OPS   operations per transaction (default 5)\n"
	"  -f FILE  database file (default /tmp/dbbench.<pid>.db; :memory: for no file)\n"
	"  -j MODE  sqlite journal_mode (default delete)\n"
	"  -k       keep the database file\n"
	"  -S SEED  input seed: other accounts and transactions, as many of them (default 0)\n";

#define BRANCHES 50
#define LOAD_BATCH 1000

static sqlite3 *db;
static uint64_t checksum = MB_CHECKSUM_SEED;

static void fail(const char *what)
{
	fprintf(stderr, "dbbench: %s: %s\n", what, db != NULL ? sqlite3_errmsg(db) : "cannot open");
	exit(1);
}

static void exec_sql(const char *sql)
{
	char *error = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &error) != SQLITE_OK) {
		fprintf(stderr, "dbbench: %s: %s\n", sql, error != NULL ? error : "failed");
		exit(1);
	}
}

static sqlite3_stmt *prepare(const char *sql)
{
	sqlite3_stmt *stmt;
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		fail(sql);
	return stmt;
}

/* Runs a prepared statement to the end, folding every column of every row into the checksum. */
static long step_all(sqlite3_stmt *stmt)
{
	long rows = 0;
	int rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		rows++;
		for (int c = 0; c < sqlite3_column_count(stmt); c++) {
			if (sqlite3_column_type(stmt, c) == SQLITE_INTEGER) {
				checksum = mb_mix(checksum, (uint64_t)sqlite3_column_int64(stmt, c));
			} else {
				const unsigned char *text = sqlite3_column_text(stmt, c);
				checksum = mb_mix_bytes(checksum, text != NULL ? text : (const unsigned char *)"", text != NULL ? strlen((const char *)text) : 0);
			}
		}
	}
	if (rc != SQLITE_DONE)
		fail(sqlite3_sql(stmt));
	sqlite3_reset(stmt);
	return rows;
}

int dbbench_main(int argc, char **argv)
{
	long rows = 20000, txns = 2000, ops = 5;
	const char *journal = "delete";
	char default_file[64];
	snprintf(default_file, sizeof default_file, "/tmp/dbbench.%ld.db", (long)getpid());
	const char *file = default_file;
	uint64_t input = 0;
	int keep = 0, opt;
	while ((opt = getopt(argc, argv, "r:t:o:f:j:kS:h")) != -1) {
		switch (opt) {
		case 'r': rows = mb_parse_long(optarg, "row count", 1, 100000000); break;
		case 't': txns = mb_parse_long(optarg, "transaction count", 0, 100000000); break;
		case 'o': ops = mb_parse_long(optarg, "operations per transaction", 1, 100000); break;
		case 'f': file = optarg; break;
		case 'j': journal = optarg; break;
		case 'k': keep = 1; break;
		case 'S': input = mb_parse_seed(optarg); break;
		default: mb_usage(usage);
		}
	}
	if (optind != argc)
		mb_usage(usage);
	if (strcmp(file, ":memory:") != 0)
		unlink(file);

	double start = mb_now();
	if (sqlite3_open(file, &db) != SQLITE_OK)
		fail(file);
	char pragma[128];
	snprintf(pragma, sizeof pragma, "PRAGMA journal_mode=%s", journal);
	exec_sql(pragma);
	exec_sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, branch INTEGER NOT NULL, name TEXT NOT NULL, balance INTEGER NOT NULL);"
		 "CREATE TABLE history(id INTEGER PRIMARY KEY, account INTEGER NOT NULL, delta INTEGER NOT NULL, note TEXT);");

	uint64_t seed = mb_seeded((uint64_t)rows * 31 + (uint64_t)txns, input);
	sqlite3_stmt *insert = prepare("INSERT INTO accounts(id, branch, name, balance) VALUES(?, ?, ?, ?)");
	for (long id = 1; id <= rows; id++) {
		if (id % LOAD_BATCH == 1)
			exec_sql("BEGIN");
		char name[32];
		snprintf(name, sizeof name, "acct-%08llx", (unsigned long long)(mb_random(&seed) & 0xffffffffu));
		sqlite3_bind_int64(insert, 1, id);
		sqlite3_bind_int64(insert, 2, (sqlite3_int64)(mb_random(&seed) % BRANCHES));
		sqlite3_bind_text(insert, 3, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(insert, 4, (sqlite3_int64)(mb_random(&seed) % 100000));
		if (sqlite3_step(insert) != SQLITE_DONE)
			fail("insert");
		sqlite3_reset(insert);
		if (id % LOAD_BATCH == 0 || id == rows)
			exec_sql("COMMIT");
	}
	exec_sql("CREATE INDEX accounts_branch ON accounts(branch)");
	double loaded = mb_now();

	sqlite3_stmt *update = prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
	sqlite3_stmt *read = prepare("SELECT balance FROM accounts WHERE id = ?");
	sqlite3_stmt *append = prepare("INSERT INTO history(account, delta, note) VALUES(?, ?, ?)");
	for (long t = 0; t < txns; t++) {
		exec_sql("BEGIN");
		for (long o = 0; o < ops; o++) {
			sqlite3_int64 account = 1 + (sqlite3_int64)(mb_random(&seed) % (uint64_t)rows);
			sqlite3_int64 delta = (sqlite3_int64)(mb_random(&seed) % 2001) - 1000;
			sqlite3_bind_int64(update, 1, delta);
			sqlite3_bind_int64(update, 2, account);
			step_all(update);
			sqlite3_bind_int64(read, 1, account);
			step_all(read);
			char note[48];
			snprintf(note, sizeof note, "t%ld.%ld", t, o);
			sqlite3_bind_int64(append, 1, account);
			sqlite3_bind_int64(append, 2, delta);
			sqlite3_bind_text(append, 3, note, -1, SQLITE_TRANSIENT);
			step_all(append);
		}
		exec_sql("COMMIT");
	}
	double transacted = mb_now();

	static const char *const reports[] = {
		"SELECT branch, count(*), sum(balance), min(balance), max(balance) FROM accounts GROUP BY branch ORDER BY branch",
		"SELECT a.branch, count(*), sum(h.delta) FROM history h JOIN accounts a ON a.id = h.account GROUP BY a.branch ORDER BY a.branch",
		"SELECT id, name, balance FROM accounts ORDER BY balance DESC, id LIMIT 20",
		"SELECT count(*), sum(delta) FROM history WHERE note LIKE 't1%'",
	};
	long report_rows = 0;
	for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
		sqlite3_stmt *stmt = prepare(reports[i]);
		report_rows += step_all(stmt);
		sqlite3_finalize(stmt);
	}
	sqlite3_finalize(insert);
	sqlite3_finalize(update);
	sqlite3_finalize(read);
	sqlite3_finalize(append);
	if (sqlite3_close(db) != SQLITE_OK)
		fail("close");
	if (!keep && strcmp(file, ":memory:") != 0)
		unlink(file);
	double end = mb_now();
	double txn_s = transacted - loaded;
	mb_result("dbbench", end - start, checksum, "rows=%ld txns=%ld ops=%ld tps=%.1f load_s=%.6f report_rows=%ld sqlite=%s", rows, txns, ops,
		  txn_s > 0 ? (double)txns / txn_s : 0.0, loaded - start, report_rows, sqlite3_libversion());
	return 0;
}
