package org.apache.samza.azure.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A loopback TCP proxy that counts what passes: bytes each way and, for HTTP/1.1, requests (by
 * their request lines). Used to measure what a coordinator costs in storage requests and bytes,
 * independently of the coordinator's own accounting.
 */
public final class CountingProxy implements AutoCloseable {
  private static final byte[] REQUEST_LINE_END =
      " HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII);

  private final ServerSocket server;
  private final int target;
  public final AtomicLong requests = new AtomicLong();
  public final AtomicLong bytesUp = new AtomicLong();
  public final AtomicLong bytesDown = new AtomicLong();

  private final Object holdLock = new Object();
  private boolean held;

  public CountingProxy(int targetPort) throws IOException {
    this.target = targetPort;
    this.server = new ServerSocket();
    server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    Thread t = new Thread(this::accept, "counting-proxy-" + targetPort);
    t.setDaemon(true);
    t.start();
  }

  public int port() {
    return server.getLocalPort();
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

  private void accept() {
    while (!server.isClosed()) {
      try {
        Socket client = server.accept();
        Socket upstream = new Socket(InetAddress.getLoopbackAddress(), target);
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
                  OutputStream out = to.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) > 0) {
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
                closeQuietly(to);
              }
            },
            "counting-proxy-pump");
    t.setDaemon(true);
    t.start();
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    hold(false);
    try {
      server.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }
}
