package org.apache.samza.azure.jni;

import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Owner of one native object, referenced by a {@code long} handle.
 *
 * <ul>
 *   <li>{@link #close()} is idempotent and thread-safe.
 *   <li>Calls borrow the handle ({@link #call} / {@link #run}); the native object is freed only
 *       when it is closed <em>and</em> no call is in flight, so a close racing a call never frees
 *       memory under it. Borrowing after close throws {@link IllegalStateException}.
 *   <li>A forgotten close is caught by a safety net that works on Java 8: a {@link
 *       PhantomReference} queue drained by one daemon thread frees the object and logs a warning.
 *       The phantom captures only the handle and a static destructor, never the owner.
 * </ul>
 */
public abstract class NativeHandle implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(NativeHandle.class);
  private static final ReferenceQueue<NativeHandle> QUEUE = new ReferenceQueue<>();

  /** Keeps releasers reachable until they run. */
  private static final Set<Releaser> LIVE = Collections.newSetFromMap(new ConcurrentHashMap<>());

  private static final AtomicLong SAFETY_NET_RELEASES = new AtomicLong();

  static {
    Thread t = new Thread(NativeHandle::drainQueue, "samza-azure-native-cleaner");
    t.setDaemon(true);
    t.start();
  }

  private final Releaser releaser;

  protected NativeHandle(long handle, LongConsumer destructor) {
    this.releaser = new Releaser(this, handle, destructor, kind(getClass()));
    LIVE.add(releaser);
  }

  /**
   * The name errors use: the simple class name, or for an anonymous class (whose simple name is
   * empty) its binary name without the package, e.g. {@code NativeGroup$1}.
   */
  static String kind(Class<?> c) {
    String simple = c.getSimpleName();
    return simple.isEmpty() ? c.getName().substring(c.getName().lastIndexOf('.') + 1) : simple;
  }

  /** Marks a call in progress and returns the handle. Pair with {@link #giveBack()} in finally. */
  private long borrow() {
    return releaser.borrow();
  }

  private void giveBack() {
    releaser.giveBack();
  }

  /** Runs {@code op} with the handle borrowed for its duration. */
  protected final <T> T call(LongFunction<T> op) {
    long handle = borrow();
    try {
      return op.apply(handle);
    } finally {
      giveBack();
    }
  }

  /** Like {@link #call(LongFunction)} for operations without a result. */
  protected final void run(LongConsumer op) {
    long handle = borrow();
    try {
      op.accept(handle);
    } finally {
      giveBack();
    }
  }

  public final boolean isClosed() {
    return releaser.closeRequested();
  }

  /** Frees the native object (once the calls in flight return). Safe to call repeatedly. */
  @Override
  public void close() {
    releaser.requestClose();
  }

  /** How many native objects the safety net had to free (each one a missing close). */
  public static long safetyNetReleases() {
    return SAFETY_NET_RELEASES.get();
  }

  private static void drainQueue() {
    while (true) {
      try {
        Releaser r = (Releaser) QUEUE.remove();
        if (r.releaseIfUnclosed()) {
          SAFETY_NET_RELEASES.incrementAndGet();
          LOG.warn("{} was not closed; its native object was freed by the safety net", r.kind);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      } catch (Throwable t) {
        LOG.error("native safety net failed to free an object", t);
      }
    }
  }

  private static final class Releaser extends PhantomReference<NativeHandle> {
    /** Bit 0: close requested; the rest: calls in flight times two. */
    private final AtomicLong state = new AtomicLong();

    private final AtomicBoolean freed = new AtomicBoolean();
    private final long handle;
    private final LongConsumer destructor;
    final String kind;

    Releaser(NativeHandle owner, long handle, LongConsumer destructor, String kind) {
      super(owner, QUEUE);
      this.handle = handle;
      this.destructor = destructor;
      this.kind = kind;
    }

    long borrow() {
      while (true) {
        long s = state.get();
        if ((s & 1) != 0) {
          throw new IllegalStateException(kind + " is closed");
        }
        if (state.compareAndSet(s, s + 2)) {
          return handle;
        }
      }
    }

    void giveBack() {
      if (state.addAndGet(-2) == 1) {
        free();
      }
    }

    boolean closeRequested() {
      return (state.get() & 1) != 0;
    }

    void requestClose() {
      while (true) {
        long s = state.get();
        if ((s & 1) != 0) {
          return;
        }
        if (state.compareAndSet(s, s | 1)) {
          if (s == 0) {
            free();
          }
          return;
        }
      }
    }

    /** Runs when the owner became unreachable; no call can be in flight then. */
    boolean releaseIfUnclosed() {
      boolean unclosed = (state.getAndUpdate(s -> s | 1) & 1) == 0;
      free();
      return unclosed;
    }

    private void free() {
      if (freed.compareAndSet(false, true)) {
        LIVE.remove(this);
        destructor.accept(handle);
      }
    }
  }
}
