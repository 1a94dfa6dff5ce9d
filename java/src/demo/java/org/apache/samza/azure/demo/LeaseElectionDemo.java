package org.apache.samza.azure.demo;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.samza.azure.errors.LeaseHeldException;
import org.apache.samza.azure.errors.LeaseLostException;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeLibrary;
import org.apache.samza.azure.storage.AzureStorageClient;
import org.apache.samza.azure.storage.Document;
import org.apache.samza.azure.testing.Azurite;

/**
 * Two processors, each with its own native storage client, elect a leader with a blob lease on a
 * local Azurite; the leader publishes a document with fenced writes; the follower takes over when
 * the leader stalls, and storage rejects the stalled leader's late write. Every step is printed as
 * it happens.
 */
public final class LeaseElectionDemo {
  private static final String CONTAINER = "samza-demo";
  private static final String DOC = "jobmodel";
  private static final int LEASE_SECONDS = 15;

  private LeaseElectionDemo() {}

  private static void say(String who, String what) {
    System.out.printf("%-12s %s%n", who, what);
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  public static void main(String[] args) throws Exception {
    say("demo", "starting Azurite on free loopback ports ...");
    try (Azurite azurite = Azurite.start();
        AzureStorageClient a = AzureStorageClient.open(azurite.config());
        AzureStorageClient b = AzureStorageClient.open(azurite.config())) {
      say(
          "demo",
          "Azurite up: blob port " + azurite.blobPort + ", table port " + azurite.tablePort);
      say("demo", "native core " + Native.version() + " loaded from " + NativeLibrary.loadedFrom());

      a.ensureContainer(CONTAINER);
      String etag = a.createDocument(CONTAINER, DOC, utf8("version=0"));
      say("demo", "created " + CONTAINER + "/" + DOC + " (version=0, etag " + etag + ")");

      // Both processors race for the leader lease at the same moment.
      ExecutorService pool = Executors.newFixedThreadPool(2);
      Future<String> fa = pool.submit(race(a));
      Future<String> fb = pool.submit(race(b));
      String leaseA = fa.get();
      String leaseB = fb.get();
      pool.shutdown();
      boolean aLeads = leaseA != null;
      AzureStorageClient leader = aLeads ? a : b;
      AzureStorageClient follower = aLeads ? b : a;
      String leaderName = aLeads ? "processor-A" : "processor-B";
      String followerName = aLeads ? "processor-B" : "processor-A";
      String lease = aLeads ? leaseA : leaseB;
      say(leaderName, "won the election: lease " + lease + " (" + LEASE_SECONDS + " s)");
      say(followerName, "lost the election (LeaseHeldException): stays a follower");

      etag =
          leader.replaceDocument(
              CONTAINER, DOC, utf8("version=1 leader=" + leaderName), etag, lease);
      say(leaderName, "published version=1 with a write fenced by its lease (etag " + etag + ")");

      try {
        follower.replaceDocument(CONTAINER, DOC, utf8("version=1 rogue"), etag, null);
        say(followerName, "UNEXPECTED: a write without the lease was accepted");
        System.exit(1);
      } catch (LeaseLostException e) {
        say(followerName, "write without the lease rejected by storage: " + e.getMessage());
      }

      String known = etag;
      String seen = follower.checkDocument(CONTAINER, DOC, known);
      say(followerName, "poll with If-None-Match: " + (seen == null ? "304 unchanged" : "changed"));

      say(leaderName, "... stalls (think GC pause or SIGSTOP) while still believing it leads");
      long t0 = System.nanoTime();
      follower.breakLease(CONTAINER, DOC, 0);
      String newLease = follower.acquireLease(CONTAINER, DOC, LEASE_SECONDS, null);
      double takeoverMs = (System.nanoTime() - t0) / 1e6;
      say(
          followerName,
          String.format(
              "broke the stale lease and took over in %.1f ms: lease %s", takeoverMs, newLease));
      etag =
          follower.replaceDocument(
              CONTAINER, DOC, utf8("version=2 leader=" + followerName), known, newLease);
      say(followerName, "published version=2 (etag " + etag + ")");

      try {
        // Not even conditioned on an ETag: the lease alone fences it.
        leader.replaceDocument(
            CONTAINER, DOC, utf8("version=2 from the stale leader"), null, lease);
        say(leaderName, "UNEXPECTED: the stale leader's write was accepted");
        System.exit(1);
      } catch (LeaseLostException e) {
        say(leaderName, "wakes up; its late write is rejected by storage (" + e.code() + ")");
      }
      try {
        leader.renewLease(CONTAINER, DOC, lease);
        System.exit(1);
      } catch (LeaseLostException e) {
        say(leaderName, "renew fails too: steps down to follower");
      }

      Document d = leader.readDocumentIfChanged(CONTAINER, DOC, known);
      say(leaderName, "now reads: \"" + new String(d.body(), StandardCharsets.UTF_8) + "\"");
      follower.releaseLease(CONTAINER, DOC, newLease);
      say(followerName, "released the lease on shutdown");
      say("demo", "storage requests: A " + a.stats() + ", B " + b.stats());
    }
    say("demo", "Azurite stopped; done.");
  }

  private static Callable<String> race(AzureStorageClient client) {
    return () -> {
      try {
        return client.acquireLease(CONTAINER, DOC, LEASE_SECONDS, null);
      } catch (LeaseHeldException lost) {
        return null;
      }
    };
  }
}
