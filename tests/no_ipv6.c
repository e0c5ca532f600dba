/*
 * A host without IPv6, for tests/test_ipv6.py. Loaded with LD_PRELOAD into the web process,
 * it makes every attempt to open an IPv6 socket fail with EAFNOSUPPORT ("Address family not
 * supported by protocol"), which is what a kernel booted with ipv6.disable=1 answers, and
 * what nginx then fails to start with when its config says `listen [::]`. Switching IPv6 off
 * on an interface is not the same: the socket still opens and binds there.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

typedef int (*socket_function)(int, int, int);

int socket(int domain, int type, int protocol)
{
    static socket_function libc_socket;

    if (domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (libc_socket == NULL)
        libc_socket = (socket_function)dlsym(RTLD_NEXT, "socket");
    return libc_socket(domain, type, protocol);
}
