/*
 * Zero-copy relay between two connected TCP sockets (Linux): splice(2) moves the bytes socket -> pipe -> socket
 * in the kernel, in both directions, on one native thread per relay. Node keeps owning both file descriptors:
 * JavaScript stops reading them before the start and closes them (socket.destroy()) only after the callback,
 * which runs once the thread no longer touches them.
 *
 *   start(fdA, fdB, headToB, headToA, callback) -> handle   bytes of the head buffers are written first
 *   stop(handle)                                             ends the relay; the callback still runs once
 *   callback(error: string | null, bytesAtoB, bytesBtoA)     error is null after both directions ended cleanly
 *
 * Per direction: bytes are taken from the source only while the pipe is empty, so an EAGAIN from the source
 * always means "nothing to read" (a full pipe would also answer EAGAIN). The pipe drains into the destination
 * before more is read: that is the backpressure (the source's kernel buffer fills, then TCP's window closes).
 * When the source reports end of stream and the pipe is empty, the destination's write side is shut down
 * (half-close): the other direction carries on. Any error ends both directions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_SIZE (1 << 20) /* asked of F_SETPIPE_SZ; the kernel may give less (pipe-max-size) */
#define THREAD_STACK (256 * 1024)

typedef struct {
  int src, dst;
  int pipe_r, pipe_w;
  size_t in_pipe;   /* bytes spliced into the pipe, not yet out of it */
  char *head;       /* written to dst before anything else */
  size_t head_len, head_off;
  int src_eof, done;
  uint64_t moved;
} direction;

typedef struct {
  direction dir[2];
  int wake;                /* eventfd: stop() writes to it; closed by the thread when it ends */
  pthread_mutex_t lock;    /* guards wake and finished between stop() and the thread's end */
  int finished;
  int refs;                /* the thread and the JS handle each hold one: the struct lives until both let go */
  napi_threadsafe_function done;
  char error[128];
} relay;

typedef struct {
  char error[128];
  uint64_t moved[2];
} outcome;

/* Closes the pipes and the eventfd and frees the heads: everything but the struct itself. The thread does this as
 * soon as it ends, so that descriptors do not wait for the JS handle to be garbage-collected. */
static void close_resources(relay *r) {
  for (int i = 0; i < 2; i++) {
    if (r->dir[i].pipe_r >= 0) close(r->dir[i].pipe_r);
    if (r->dir[i].pipe_w >= 0) close(r->dir[i].pipe_w);
    r->dir[i].pipe_r = r->dir[i].pipe_w = -1;
    free(r->dir[i].head);
    r->dir[i].head = NULL;
  }
  pthread_mutex_lock(&r->lock);
  if (r->wake >= 0) close(r->wake);
  r->wake = -1;
  r->finished = 1;
  pthread_mutex_unlock(&r->lock);
}

static void release(relay *r) {
  if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  close_resources(r); /* a no-op after the thread's end; frees what a failed start() made */
  pthread_mutex_destroy(&r->lock);
  free(r);
}

static void fail(relay *r, const char *what, int err) {
  if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s: %s", what, strerror(err));
}

/* Moves what it can without blocking, at most BUDGET system calls so that one busy direction does not starve
 * the other. Sets the poll events wanted on src and dst; returns 1 when the budget ran out (more is ready),
 * 0 otherwise, or -1 after an error (recorded in r->error). */
#define BUDGET 16
static int step(relay *r, direction *d, short *want_src, short *want_dst) {
  *want_src = *want_dst = 0;
  for (int calls = 0; !d->done; calls++) {
    if (calls == BUDGET) return 1;
    if (d->head_off < d->head_len) {
      ssize_t n = send(d->dst, d->head + d->head_off, d->head_len - d->head_off, MSG_NOSIGNAL);
      if (n > 0) { d->head_off += (size_t)n; continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) { *want_dst = POLLOUT; return 0; }
      fail(r, "write", n < 0 ? errno : EIO);
      return -1;
    }
    if (d->in_pipe > 0) {
      ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) { d->in_pipe -= (size_t)n; d->moved += (uint64_t)n; continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) { *want_dst = POLLOUT; return 0; }
      fail(r, "send", n < 0 ? errno : EIO);
      return -1;
    }
    if (d->src_eof) {
      /* Everything read has been written: pass the end of stream on, keep the other direction open. */
      if (shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN) { fail(r, "shutdown", errno); return -1; }
      d->done = 1;
      return 0;
    }
    ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) { d->in_pipe = (size_t)n; continue; }
    if (n == 0) { d->src_eof = 1; continue; }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) { *want_src = POLLIN; return 0; }
    fail(r, "receive", errno);
    return -1;
  }
  return 0;
}

static void *run(void *arg) {
  relay *r = arg;
  int stopped = 0;
  while (!(r->dir[0].done && r->dir[1].done)) {
    /* fds: 0 = socket A, 1 = socket B, 2 = wake. Direction 0 is A -> B, direction 1 is B -> A. */
    struct pollfd p[3] = {{r->dir[0].src, 0, 0}, {r->dir[0].dst, 0, 0}, {r->wake, POLLIN, 0}};
    short s0, d0, s1, d1;
    int more0 = step(r, &r->dir[0], &s0, &d0), more1 = more0 < 0 ? -1 : step(r, &r->dir[1], &s1, &d1);
    if (more0 < 0 || more1 < 0) break;
    if (r->dir[0].done && r->dir[1].done) break;
    p[0].events = s0 | d1;
    p[1].events = d0 | s1;
    if (poll(p, 3, more0 || more1 ? 0 : -1) < 0) {
      if (errno == EINTR) continue;
      fail(r, "poll", errno);
      break;
    }
    if (p[2].revents) { stopped = 1; break; }
    /* An error or hang-up on a socket with an event asked for is reported by the next step's system call. On a
     * socket nobody waits for (its direction idle or done) it can only be a reset: both ends close now. */
    int broken = 0;
    for (int i = 0; i < 2; i++) {
      if ((p[i].revents & (POLLERR | POLLHUP | POLLNVAL)) && !p[i].events) broken = 1;
    }
    if (broken) { fail(r, "socket", ECONNRESET); break; }
  }
  outcome *o = calloc(1, sizeof *o);
  if (o) {
    if (stopped) snprintf(o->error, sizeof o->error, "stopped");
    else memcpy(o->error, r->error, sizeof o->error);
    o->moved[0] = r->dir[0].moved + r->dir[0].head_off;
    o->moved[1] = r->dir[1].moved + r->dir[1].head_off;
  }
  napi_threadsafe_function done = r->done;
  close_resources(r);
  release(r); /* before the callback: JS may close the sockets as soon as it runs */
  napi_call_threadsafe_function(done, o, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

/* Runs on the JS thread: callback(error | null, bytesAtoB, bytesBtoA). */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  outcome *o = data;
  if (env == NULL || callback == NULL) { free(o); return; }
  napi_value argv[3], undefined;
  napi_get_undefined(env, &undefined);
  if (o == NULL) napi_create_string_utf8(env, "out of memory", NAPI_AUTO_LENGTH, &argv[0]);
  else if (o->error[0]) napi_create_string_utf8(env, o->error, NAPI_AUTO_LENGTH, &argv[0]);
  else napi_get_null(env, &argv[0]);
  napi_create_double(env, o ? (double)o->moved[0] : 0, &argv[1]);
  napi_create_double(env, o ? (double)o->moved[1] : 0, &argv[2]);
  free(o);
  napi_call_function(env, undefined, callback, 3, argv, NULL);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  release(data);
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* Copies a Buffer argument (or nothing for null/undefined) into malloc'd memory. */
static int copy_head(napi_env env, napi_value value, char **out, size_t *len) {
  napi_valuetype type;
  *out = NULL;
  *len = 0;
  if (napi_typeof(env, value, &type) != napi_ok) return -1;
  if (type == napi_null || type == napi_undefined) return 0;
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return -1;
  void *bytes;
  if (napi_get_buffer_info(env, value, &bytes, len) != napi_ok) return -1;
  if (*len == 0) return 0;
  if (!(*out = malloc(*len))) return -1;
  memcpy(*out, bytes, *len);
  return 0;
}

static int open_pipe(direction *d) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
  d->pipe_r = fds[0];
  d->pipe_w = fds[1];
  fcntl(d->pipe_w, F_SETPIPE_SZ, PIPE_SIZE); /* best effort: fewer system calls per byte */
  return 0;
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_error(env, "start(fdA, fdB, headToB, headToA, callback)");
  int32_t fd[2];
  for (int i = 0; i < 2; i++) {
    if (napi_get_value_int32(env, argv[i], &fd[i]) != napi_ok || fd[i] < 0) return throw_error(env, "start: file descriptors must be integers >= 0");
  }
  napi_valuetype type;
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_function) return throw_error(env, "start: callback must be a function");

  relay *r = calloc(1, sizeof *r);
  if (!r) return throw_error(env, "start: out of memory");
  r->refs = 2;
  r->wake = -1;
  pthread_mutex_init(&r->lock, NULL);
  for (int i = 0; i < 2; i++) {
    r->dir[i].src = fd[i];
    r->dir[i].dst = fd[1 - i];
    r->dir[i].pipe_r = r->dir[i].pipe_w = -1;
  }
  const char *problem = NULL;
  if (copy_head(env, argv[2], &r->dir[0].head, &r->dir[0].head_len) < 0 ||
      copy_head(env, argv[3], &r->dir[1].head, &r->dir[1].head_len) < 0) problem = "start: heads must be Buffers or null";
  else if (open_pipe(&r->dir[0]) < 0 || open_pipe(&r->dir[1]) < 0) problem = "start: pipe() failed";
  else if ((r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) problem = "start: eventfd() failed";
  if (problem) {
    r->refs = 1;
    release(r);
    return throw_error(env, problem);
  }

  napi_value name, handle;
  napi_create_string_utf8(env, "splice-relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->done) != napi_ok) {
    r->refs = 1;
    release(r);
    return throw_error(env, "start: cannot create the completion callback");
  }
  if (napi_create_external(env, r, finalize_handle, NULL, &handle) != napi_ok) {
    napi_release_threadsafe_function(r->done, napi_tsfn_abort);
    r->refs = 1;
    release(r);
    return throw_error(env, "start: cannot create the handle");
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, run, r);
  pthread_attr_destroy(&attr);
  if (err) {
    napi_release_threadsafe_function(r->done, napi_tsfn_abort);
    __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL); /* the thread's reference; the handle keeps its own */
    return throw_error(env, "start: cannot start a thread");
  }
  return handle;
}

static napi_value stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) return throw_error(env, "stop(handle)");
  relay *r = data;
  uint64_t one = 1;
  pthread_mutex_lock(&r->lock); /* once the thread has ended, its eventfd is closed (and the number maybe reused) */
  if (!r->finished) {
    ssize_t ignored = write(r->wake, &one, sizeof one);
    (void)ignored;
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
    {"stop", NULL, stop, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
