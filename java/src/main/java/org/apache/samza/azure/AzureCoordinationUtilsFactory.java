package org.apache.samza.azure;

import org.apache.samza.azure.coordination.AzureCoordinationUtils;
import org.apache.samza.config.Config;
import org.apache.samza.coordinator.CoordinationUtils;
import org.apache.samza.coordinator.CoordinationUtilsFactory;

/**
 * Samza's CoordinationUtils (leader elector, latch, distributed lock, cluster membership) on Azure
 * Storage, for the job named by {@code job.name} / {@code job.id}; storage keys as for the
 * coordinator.
 */
public final class AzureCoordinationUtilsFactory implements CoordinationUtilsFactory {
  @Override
  public CoordinationUtils getCoordinationUtils(
      String groupId, String participantId, Config updatedConfig) {
    return new AzureCoordinationUtils(groupId, participantId, updatedConfig);
  }
}
