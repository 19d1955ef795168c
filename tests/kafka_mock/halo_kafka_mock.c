/*
 * halo_kafka_mock.c -- a Kafka cluster for tests and benchmarks, in its own
 * process: librdkafka's mock cluster (rdkafka_mock.h) listening on
 * 127.0.0.1, so halo talks to it over TCP exactly as to a real broker.
 *
 *   halo-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... [--commands]
 *
 * It prints one line, "bootstrap <host:port,...>", once the cluster is up,
 * then runs until SIGTERM/SIGINT. With --commands it also reads commands,
 * one per line, from standard input and answers each with "ok <command>"
 * (or "error ...") on standard output:
 *
 *   down          every broker refuses service (connections are closed)
 *   up            every broker serves again
 *   quit          exit (end of input exits too)
 *
 * The cluster keeps everything in memory: messages are gone when the
 * process exits, which is why "broker unreachable" is `down`, not a kill.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: halo-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... "
    "[--commands]\n"
    "  --brokers N               brokers in the cluster (default 1)\n"
    "  --topic NAME:PARTITIONS   create a topic (repeatable); other topics\n"
    "                            are created on first use\n"
    "  --commands                read down/up/quit commands from stdin\n";

static int n_brokers = 1;

static void set_all(rd_kafka_mock_cluster_t *mc, int up)
{
    for (int id = 1; id <= n_brokers; id++) {
        if (up)
            rd_kafka_mock_broker_set_up(mc, id);
        else
            rd_kafka_mock_broker_set_down(mc, id);
    }
}

typedef struct cmd_ctx {
    rd_kafka_mock_cluster_t *mc;
    pthread_t main_thread;
} cmd_ctx;

/* Reads commands; on quit or end of input, wakes the main thread. */
static void *commands(void *arg)
{
    cmd_ctx *c = arg;
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "down") == 0) {
            set_all(c->mc, 0);
        } else if (strcmp(line, "up") == 0) {
            set_all(c->mc, 1);
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else if (line[0] == '\0') {
            continue;
        } else {
            printf("error unknown command \"%s\" (down, up, quit)\n", line);
            fflush(stdout);
            continue;
        }
        printf("ok %s\n", line);
        fflush(stdout);
    }
    pthread_kill(c->main_thread, SIGTERM);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *topics[64];
    int n_topics = 0;
    int with_commands = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            n_brokers = atoi(argv[++i]);
            if (n_brokers < 1 || n_brokers > 16) {
                fprintf(stderr, "halo-kafka-mock: --brokers must be 1..16\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            if (n_topics == 64) {
                fprintf(stderr, "halo-kafka-mock: at most 64 topics\n");
                return 2;
            }
            topics[n_topics++] = argv[++i];
        } else if (strcmp(argv[i], "--commands") == 0) {
            with_commands = 1;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "halo-kafka-mock: unknown argument \"%s\"\n%s",
                    argv[i], usage);
            return 2;
        }
    }

    /* SIGTERM/SIGINT are taken with sigwait, in this thread only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "halo-kafka-mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, n_brokers);
    if (!mc) {
        fprintf(stderr, "halo-kafka-mock: could not start the cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < n_topics; i++) {
        char name[256];
        const char *colon = strrchr(topics[i], ':');
        int parts = colon ? atoi(colon + 1) : 1;
        size_t len = colon ? (size_t)(colon - topics[i]) : strlen(topics[i]);
        if (len == 0 || len >= sizeof name || parts < 1) {
            fprintf(stderr,
                    "halo-kafka-mock: bad --topic \"%s\" (NAME:PARTITIONS)\n",
                    topics[i]);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 2;
        }
        memcpy(name, topics[i], len);
        name[len] = '\0';
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            mc, name, parts, n_brokers < 3 ? n_brokers : 3);
        if (err) {
            fprintf(stderr, "halo-kafka-mock: topic %s: %s\n", name,
                    rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    cmd_ctx c = {mc, pthread_self()};
    pthread_t reader;
    if (with_commands && pthread_create(&reader, NULL, commands, &c) == 0)
        pthread_detach(reader);

    int sig = 0;
    sigwait(&set, &sig);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
