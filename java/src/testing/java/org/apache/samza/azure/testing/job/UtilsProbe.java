package org.apache.samza.azure.testing.job;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.samza.azure.AzureCoordinationUtilsFactory;
import org.apache.samza.config.MapConfig;
import org.apache.samza.coordinator.ClusterMembership;
import org.apache.samza.coordinator.CoordinationUtils;
import org.apache.samza.coordinator.DistributedLock;
import org.apache.samza.coordinator.Latch;
import org.apache.samza.coordinator.LeaderElector;

/**
 * Uses one of our CoordinationUtils from its own JVM and reports on stdout, for tests across
 * processes: {@code UtilsProbe <config.properties> <participant> <action> <args...>} with action
 * {@code lock <id> <holdMs>}, {@code lock-and-hang <id>}, {@code latch <id> <size> <timeoutMs>},
 * {@code elect}, or {@code member <seconds>}. Lines carry epoch millis.
 */
public final class UtilsProbe {
  private UtilsProbe() {}

  private static void say(String what) {
    System.out.println(what + " " + System.currentTimeMillis());
    System.out.flush();
  }

  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    try (InputStream in = new FileInputStream(args[0])) {
      props.load(in);
    } catch (IOException e) {
      throw e;
    }
    Map<String, String> config = new HashMap<>();
    props.stringPropertyNames().forEach(k -> config.put(k, props.getProperty(k)));
    String participant = args[1];
    CoordinationUtils utils =
        new AzureCoordinationUtilsFactory()
            .getCoordinationUtils("probe", participant, new MapConfig(config));
    switch (args[2]) {
      case "lock":
        {
          DistributedLock lock = utils.getLock(args[3]);
          if (!lock.lock(Duration.ofSeconds(60))) {
            say("LOCK-TIMEOUT");
            break;
          }
          say("LOCKED");
          // The probe's job is to hold the lock for a while.
          Thread.sleep(Long.parseLong(args[4]));
          say("UNLOCKING");
          lock.unlock();
          break;
        }
      case "lock-and-hang":
        {
          DistributedLock lock = utils.getLock(args[3]);
          say(lock.lock(Duration.ofSeconds(60)) ? "LOCKED" : "LOCK-TIMEOUT");
          Thread.sleep(Long.MAX_VALUE);
          break;
        }
      case "latch":
        {
          Latch latch = utils.getLatch(Integer.parseInt(args[4]), args[3]);
          latch.countDown();
          try {
            latch.await(Long.parseLong(args[5]), TimeUnit.MILLISECONDS);
            say("LATCH-OK");
          } catch (TimeoutException e) {
            say("LATCH-TIMEOUT");
          }
          break;
        }
      case "elect":
        {
          LeaderElector elector = utils.getLeaderElector();
          elector.setLeaderElectorListener(() -> say("LEADER"));
          elector.tryBecomeLeader();
          Thread.sleep(Long.MAX_VALUE);
          break;
        }
      case "member":
        {
          ClusterMembership membership = utils.getClusterMembership();
          String id = membership.registerProcessor();
          long end = System.currentTimeMillis() + Long.parseLong(args[3]) * 1000;
          while (System.currentTimeMillis() < end) {
            say("SIZE " + membership.getNumberOfProcessors());
            Thread.sleep(200);
          }
          membership.unregisterProcessor(id);
          say("LEFT");
          break;
        }
      default:
        throw new IllegalArgumentException("unknown action " + args[2]);
    }
    utils.close();
  }
}
