/* A tiny HTTP server that opens its port with SO_REUSEPORT, so that two versions of an application can
 * listen at once (network_mode host) during a container_rollout with update_order start-first.
 *
 *   server            serve $PORT (default 8080) on all addresses; every GET answers 200 with $APP_VERSION.
 *                     Once it listens it creates /ready; it exits at once on SIGTERM (a proper PID 1).
 *   server ready      exit 0 when /ready exists: the health command, run inside the container itself.
 *
 * Built static (cc -static -O2), so the image is FROM scratch and the same source serves every platform.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ready") == 0)
        return access("/ready", F_OK) == 0 ? 0 : 1;
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGPIPE, SIG_IGN);
    const char *port_text = getenv("PORT");
    const char *version = getenv("APP_VERSION");
    int port = port_text ? atoi(port_text) : 8080;
    if (!version)
        version = "unknown";

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0) {
        fprintf(stderr, "port %d: %s\n", port, strerror(errno));
        return 1;
    }
    close(open("/ready", O_CREAT | O_WRONLY, 0644));
    fprintf(stderr, "%s listens on port %d\n", version, port);

    char body[256], head[256], request[4096];
    int body_len = snprintf(body, sizeof body, "%s\n", version);
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                            "Connection: close\r\n\r\n",
                            body_len);
    struct timeval timeout = {.tv_sec = 2};
    for (;;) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0)
            continue;
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        if (read(conn, request, sizeof request) > 0) {
            if (write(conn, head, (size_t)head_len) == head_len)
                (void)!write(conn, body, (size_t)body_len);
        }
        close(conn);
    }
}
