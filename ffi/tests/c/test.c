/* The C ABI of aclc-ffi, used as a C program would: engine, JSON requests, responses freed.
 * Built against the static and the shared library by run.sh (which .ci/run calls).
 * Usage: test EXAMPLES_DIR (testdata/examples). Prints "c: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aclc.h"

static int passed, failed;

static void expect(int ok, const char *what, const char *detail) {
	if (ok) {
		passed++;
	} else {
		failed++;
		fprintf(stderr, "FAIL: %s\n  %.600s\n", what, detail ? detail : "");
	}
}

/* The response to `request`, NUL-terminated, to free(). */
static char *call(AclcEngine *engine, const char *request) {
	size_t len = 0;
	uint8_t *out = aclc_engine_call(engine, (const uint8_t *)request, strlen(request), &len);
	if (out == NULL) {
		return NULL;
	}
	char *text = malloc(len + 1);
	if (text != NULL) {
		memcpy(text, out, len);
		text[len] = '\0';
	}
	aclc_response_free(out, len);
	return text;
}

static char *read_file(const char *dir, const char *name) {
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *text = malloc((size_t)size + 1);
	if (text == NULL || fread(text, 1, (size_t)size, f) != (size_t)size) {
		exit(2);
	}
	text[size] = '\0';
	fclose(f);
	return text;
}

/* `s` as a JSON string literal (quotes, backslashes and control characters escaped). */
static char *json_string(const char *s) {
	char *out = malloc(strlen(s) * 6 + 3), *p = out;
	*p++ = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
		} else if (c < 0x20) {
			p += sprintf(p, "\\u%04x", c);
		} else {
			*p++ = (char)c;
		}
	}
	*p++ = '"';
	*p = '\0';
	return out;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: %s EXAMPLES_DIR\n", argv[0]);
		return 2;
	}
	char *policy = json_string(read_file(argv[1], "policy.hujson"));
	char *broken = json_string(read_file(argv[1], "invalid.hujson"));
	char *inventory = read_file(argv[1], "inventory.json");
	size_t room = strlen(policy) + strlen(broken) + strlen(inventory) + 512;
	char *request = malloc(room);

	AclcEngine *engine = aclc_engine_new();
	expect(engine != NULL, "aclc_engine_new", NULL);

	char *r = call(engine, "{\"version\":1,\"op\":\"info\"}");
	expect(r && strstr(r, "\"ops\":[") && strncmp(r, "{\"version\":1,", 13) == 0, "info", r);
	free(r);

	snprintf(request, room, "{\"version\":1,\"op\":\"check\",\"policy\":%s}", policy);
	r = call(engine, request);
	expect(r && strstr(r, "\"valid\":true"), "check: the example is valid", r);
	free(r);

	snprintf(request, room, "{\"version\":1,\"op\":\"check\",\"policy\":%s,\"inventory\":%s}", broken, inventory);
	r = call(engine, request);
	expect(r && strstr(r, "\"valid\":false") && strstr(r, "\"severity\":\"error\""), "check: the broken example", r);
	free(r);

	snprintf(request, room, "{\"version\":1,\"op\":\"fmt\",\"policy\":%s}", policy);
	r = call(engine, request);
	expect(r && strstr(r, "\"formatted\":"), "fmt", r);
	free(r);

	snprintf(request, room, "{\"version\":1,\"op\":\"load\",\"policy\":%s,\"inventory\":%s}", policy, inventory);
	r = call(engine, request);
	expect(r && strstr(r, "\"handle\":1") && strstr(r, "\"web-1\""), "load", r);
	free(r);

	r = call(engine, "{\"version\":1,\"op\":\"node_map\",\"handle\":1,\"node\":\"web-1\"}");
	expect(r && strstr(r, "\"node\":\"web-1\"") && strstr(r, "\"packet_filter_rules\""), "node_map", r);
	free(r);

	r = call(engine, "{\"version\":1,\"op\":\"explain\",\"handle\":1,\"src\":\"bob@example.com\",\"dst\":\"web-1:443\"}");
	expect(r && strstr(r, "\"allowed\":true"), "explain", r);
	free(r);

	r = call(engine, "{\"version\":1,\"op\":\"free\",\"handle\":1}");
	expect(r && strstr(r, "\"freed\":1"), "free", r);
	free(r);

	r = call(engine, "{\"version\":1,\"op\":\"node_map\",\"handle\":1,\"node\":\"web-1\"}");
	expect(r && strstr(r, "\"kind\":\"unknown_handle\""), "node_map after free", r);
	free(r);

	r = call(engine, "{not json");
	expect(r && strstr(r, "\"kind\":\"bad_request\""), "bad request", r);
	free(r);

	size_t len = 1;
	expect(aclc_engine_call(NULL, NULL, 0, &len) == NULL, "null engine", NULL);
	aclc_response_free(NULL, 0);
	aclc_engine_free(engine);
	aclc_engine_free(NULL);

	free(request);
	free(policy);
	free(broken);
	free(inventory);
	printf("c: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
