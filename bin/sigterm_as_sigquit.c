/*
 * Make nginx treat SIGTERM like SIGQUIT: finish the requests it has accepted, then exit.
 *
 * Why: when Heroku stops a dyno it sends SIGTERM to every process in it at the same moment.
 * For nginx, SIGTERM means "fast shutdown": every open connection is cut, so each request
 * still in flight during a deploy or a restart fails. SIGQUIT is nginx's graceful shutdown,
 * but no directive maps one signal to the other, and Heroku cannot be told to send SIGQUIT.
 *
 * How: bin/start-nginx loads this library into nginx, and only into nginx, with LD_PRELOAD.
 * nginx installs its signal handlers with sigaction(). The sigaction() below passes every
 * call through to the C library, except that the handler nginx installs for SIGTERM is
 * replaced by one that calls nginx's own SIGQUIT handler. Nothing else changes: SIGINT
 * still means fast shutdown, and bin/start-nginx still stops nginx with SIGKILL when a
 * graceful stop takes too long. nginx's worker processes inherit the handler when they fork.
 *
 * Build: cc -shared -fPIC -O2 -o bin/sigterm_as_sigquit.so bin/sigterm_as_sigquit.c -ldl
 * (make run, make test and bin/post_compile do this).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>

typedef int (*sigaction_function)(int, const struct sigaction *, struct sigaction *);

/* What the program asked for, kept so that SIGTERM can be answered with them later. */
static struct sigaction programs_quit_action;
static struct sigaction programs_term_action;

static sigaction_function libc_sigaction(void)
{
    static sigaction_function real;
    if (real == NULL) {
        real = (sigaction_function) dlsym(RTLD_NEXT, "sigaction");
    }
    return real;
}

static int is_function(const struct sigaction *action)
{
    return action->sa_handler != SIG_DFL && action->sa_handler != SIG_IGN;
}

static void call_handler(const struct sigaction *action, int signum, siginfo_t *info, void *context)
{
    if (action->sa_flags & SA_SIGINFO) {
        action->sa_sigaction(signum, info, context);
    } else {
        action->sa_handler(signum);
    }
}

/* Runs on SIGTERM: nginx's SIGQUIT handler if it has one, else its own SIGTERM handler. */
static void handle_term_as_quit(int signum, siginfo_t *info, void *context)
{
    if (is_function(&programs_quit_action)) {
        call_handler(&programs_quit_action, SIGQUIT, info, context);
    } else {
        call_handler(&programs_term_action, signum, info, context);
    }
}

int sigaction(int signum, const struct sigaction *action, struct sigaction *old_action)
{
    if (action == NULL) {
        return libc_sigaction()(signum, action, old_action);
    }
    if (signum == SIGQUIT) {
        programs_quit_action = *action;
    }
    /* A program may read its SIGTERM handler back and install it again; that is our own
       handler then, and wrapping it a second time would make it call itself. */
    int is_ours = (action->sa_flags & SA_SIGINFO) && action->sa_sigaction == handle_term_as_quit;
    if (signum != SIGTERM || !is_function(action) || is_ours) {
        return libc_sigaction()(signum, action, old_action);
    }
    programs_term_action = *action;
    struct sigaction replacement = *action;
    replacement.sa_sigaction = handle_term_as_quit;
    replacement.sa_flags |= SA_SIGINFO;
    /* Block SIGQUIT while the handler runs, as the kernel would for a real SIGQUIT. */
    sigaddset(&replacement.sa_mask, SIGQUIT);
    return libc_sigaction()(SIGTERM, &replacement, old_action);
}
