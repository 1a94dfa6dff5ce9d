package org.apache.samza.azure.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A loopback TCP proxy that counts what passes: bytes each way and, for HTTP/1.1, requests (by
 * their request lines). Used to measure what a coordinator costs in storage requests and bytes,
 * independently of the coordinator's own accounting.
 *
 * <p>It can also cut what it serves, as an outage would: {@link #refuse()} (nothing listens: new
 * connections are refused and open ones reset), {@link #silence()} (connections are accepted, but
 * nothing is forwarded or answered either way), and {@link #restore()}.
 */
public final class CountingProxy implements AutoCloseable {
  private static final byte[] REQUEST_LINE_END =
      " HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII);

  private enum Mode {
    FORWARD,
    REFUSE,
    SILENT
  }

  private final int target;
  private final int port;
  private volatile ServerSocket server;
  private volatile Mode mode = Mode.FORWARD;
  private volatile boolean closed;

  /** Every open connection, client and upstream side, so an outage can cut them. */
  private final Set<Socket> open = ConcurrentHashMap.newKeySet();

  public final AtomicLong requests = new AtomicLong();
  public final AtomicLong bytesUp = new AtomicLong();
  public final AtomicLong bytesDown = new AtomicLong();

  private final Object holdLock = new Object();
  private boolean held;

  public CountingProxy(int targetPort) throws IOException {
    this.target = targetPort;
    this.server = listen(0);
    this.port = server.getLocalPort();
    startAccepting(server);
  }

  private static ServerSocket listen(int port) throws IOException {
    ServerSocket s = new ServerSocket();
    s.setReuseAddress(true);
    s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
    return s;
  }

  private void startAccepting(ServerSocket s) {
    Thread t = new Thread(() -> accept(s), "counting-proxy-" + target);
    t.setDaemon(true);
    t.start();
  }

  public int port() {
    return port;
  }

  /** Nothing listens on the port any more, and open connections are reset: connection refused. */
  public synchronized void refuse() throws IOException {
    mode = Mode.REFUSE;
    server.close();
    cutOpenConnections();
  }

  /**
   * Connections are accepted, but from now on nothing is forwarded either way and nothing is
   * answered: requests hang until their client gives up.
   */
  public synchronized void silence() {
    mode = Mode.SILENT;
  }

  /** Forwards again (connections left hanging by {@link #silence()} are closed). */
  public synchronized void restore() throws IOException {
    if (closed) {
      return;
    }
    Mode was = mode;
    mode = Mode.FORWARD;
    if (was == Mode.REFUSE) {
      server = listen(port);
      startAccepting(server);
    } else if (was == Mode.SILENT) {
      cutOpenConnections();
    }
  }

  private void cutOpenConnections() {
    for (Socket s : open) {
      try {
        s.setSoLinger(true, 0); // a reset, as a dropped path looks to the client
      } catch (IOException ignored) {
        // closing anyway
      }
      closeQuietly(s);
    }
  }

  /**
   * While held, nothing is forwarded in either direction: requests hang as they would against a
   * storage account that stopped answering.
   */
  public void hold(boolean held) {
    synchronized (holdLock) {
      this.held = held;
      holdLock.notifyAll();
    }
  }

  private void awaitUnheld() throws IOException {
    synchronized (holdLock) {
      while (held) {
        try {
          holdLock.wait();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted", e);
        }
      }
    }
  }

  public void reset() {
    requests.set(0);
    bytesUp.set(0);
    bytesDown.set(0);
  }

  private void accept(ServerSocket s) {
    while (!s.isClosed()) {
      try {
        Socket client = s.accept();
        open.add(client);
        if (mode == Mode.SILENT) {
          // Held open, never answered: read and drop whatever it sends.
          pump(client, null, true);
          continue;
        }
        Socket upstream = new Socket(InetAddress.getLoopbackAddress(), target);
        open.add(upstream);
        client.setTcpNoDelay(true);
        upstream.setTcpNoDelay(true);
        pump(client, upstream, true);
        pump(upstream, client, false);
      } catch (IOException e) {
        // closed, or the target refused: the client sees its connection drop
      }
    }
  }

  private void pump(Socket from, Socket to, boolean up) {
    Thread t =
        new Thread(
            () -> {
              byte[] buf = new byte[64 * 1024];
              int matched = 0;
              try (InputStream in = from.getInputStream();
                  OutputStream out = to == null ? null : to.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) > 0) {
                  if (mode == Mode.SILENT || out == null) {
                    continue; // dropped: the other side hears nothing
                  }
                  if (up) {
                    bytesUp.addAndGet(n);
                    for (int i = 0; i < n; i++) {
                      matched =
                          buf[i] == REQUEST_LINE_END[matched]
                              ? matched + 1
                              : (buf[i] == REQUEST_LINE_END[0] ? 1 : 0);
                      if (matched == REQUEST_LINE_END.length) {
                        requests.incrementAndGet();
                        matched = 0;
                      }
                    }
                  } else {
                    bytesDown.addAndGet(n);
                  }
                  awaitUnheld();
                  out.write(buf, 0, n);
                  out.flush();
                }
              } catch (IOException e) {
                // connection closed
              } finally {
                closeQuietly(from);
                if (to != null) {
                  closeQuietly(to);
                }
              }
            },
            "counting-proxy-pump");
    t.setDaemon(true);
    t.start();
  }

  private void closeQuietly(Socket s) {
    open.remove(s);
    try {
      s.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }

  @Override
  public synchronized void close() {
    closed = true;
    hold(false);
    try {
      server.close();
    } catch (IOException ignored) {
      // closing anyway
    }
    cutOpenConnections();
  }
}
